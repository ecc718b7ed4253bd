"""Label tasks and class names of a data source: the one discovery pretraining and evaluation share.

* :func:`class_names` (zero-shot evaluation, and the first choice of :func:`label_tasks`): a source's ``tasks`` /
  ``classes`` (built-in data, image-folder sub-folder names, torchvision ``classes``), or a ``classes.json`` list
  beside the split's files (WebDataset shards, a CSV / TSV / JSONL table, a COCO / Karpathy JSON). Label ``i`` is
  ``names[i]``. A ``classes.json`` that is not a non-empty JSON list of strings is a :class:`DataError` naming it.
* :func:`label_tasks` (pretraining's online probes and ``--method supervised``): :func:`class_names`, else, when
  the data carries integer labels but no names file (``data.label_key`` of a table, ``label`` of COCO / Karpathy
  entries, ``.cls`` members of shards), ``max label + 1`` classes named ``"0"``, ``"1"``, ... counted from the data
  (the reader's ``label_values()``, which reads no image).
* :func:`check_label`: readers turn a label outside ``0 .. n-1`` of a known ``classes.json`` into a
  :class:`BadSample` (skipped and counted) instead of letting training fail on it.
"""
from __future__ import annotations

import logging
from typing import Any

from ..config import DataConfig
from .class_file import CLASSES_FILE, check_label, read_class_names
from .sources import classes_file, file_class_count

log = logging.getLogger("tvdim.data")


def class_names(source: Any, data: DataConfig | None, split: str) -> dict[str, list[str]]:
    """Task -> class names for ``split`` of ``data`` (``{}`` when the data names no classes)."""
    tasks = getattr(source, "tasks", None)
    if tasks:
        return {t: list(v) for t, v in dict(tasks).items()}
    classes = getattr(source, "classes", None)
    if classes:
        return {"label": [str(c) for c in classes]}
    found = classes_file(data, split) if data is not None else None
    return {"label": read_class_names(found)} if found is not None else {}


def label_tasks(source: Any, data: DataConfig | None = None, split: str = "train") -> dict[str, list[str]]:
    """Task -> class names: :func:`class_names`, else classes counted from the labels the source carries
    (named ``"0"`` .. ``"K-1"``); ``{}`` when the data has no label."""
    names = class_names(source, data, split)
    if names:
        return names
    values = getattr(source, "label_values", None)
    if values is None:
        return {}
    top = max((v for v in values() if v >= 0), default=-1)
    if top < 0:
        return {}
    where = getattr(source, "pattern", None) or getattr(source, "path", None) or "the data"
    log.info("no %s for %s: %d classes counted from its labels (0..%d)", CLASSES_FILE, where, top + 1, top)
    return {"label": [str(i) for i in range(top + 1)]}


__all__ = ["class_names", "label_tasks", "read_class_names", "classes_file", "file_class_count", "check_label",
           "CLASSES_FILE"]
