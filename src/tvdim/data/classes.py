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

import json
import logging
from pathlib import Path
from typing import Any

from ..config import DataConfig
from ..errors import ConfigError, DataError
from .sample import BadSample

CLASSES_FILE = "classes.json"
FILE_FORMATS = ("wds", "csv", "tsv", "jsonl", "coco", "karpathy")
log = logging.getLogger("tvdim.data")


def read_class_names(path: str | Path) -> list[str]:
    """The class names in a ``classes.json`` file; :class:`DataError` naming it unless it holds a non-empty JSON
    list of strings (label i = names[i])."""
    found = Path(path)
    try:
        names = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{found}: not readable as JSON ({why})") from exc
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        got = type(names).__name__ if not isinstance(names, list) else "an empty list" if not names else \
            "a list holding non-strings"
        raise DataError(f"{found} must hold a JSON list of class names (label i = names[i]); it holds {got}")
    return names


def classes_file(data: DataConfig, split: str) -> Path | None:
    """The ``classes.json`` beside ``split``'s files (the first shard's folder for WebDataset), if it exists."""
    if data.format not in FILE_FORMATS:
        return None
    from .formats.wds import expand_urls, is_remote
    from .sources import split_path

    try:
        path = split_path(data, split)
    except ConfigError:
        return None
    first = expand_urls(path)[0] if data.format == "wds" else path
    if is_remote(first):
        return None
    found = Path(first).parent / CLASSES_FILE
    return found if found.is_file() else None


def file_class_count(data: DataConfig, split: str) -> int:
    """Number of names in ``split``'s ``classes.json`` (0 when there is none): the labels readers accept."""
    found = classes_file(data, split)
    return len(read_class_names(found)) if found is not None else 0


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


def check_label(label: int, num_classes: int, key: str) -> BadSample | None:
    """A :class:`BadSample` for a label outside ``0 .. num_classes-1`` of a ``classes.json`` (``num_classes`` 0 =
    no names file: nothing is checked; negative labels mean 'unlabelled' and pass)."""
    if num_classes and label >= num_classes:
        return BadSample(key, f"label {label} is outside the {num_classes} classes of {CLASSES_FILE} "
                              f"(0..{num_classes - 1})")
    return None


__all__ = ["class_names", "label_tasks", "read_class_names", "classes_file", "file_class_count", "check_label",
           "CLASSES_FILE", "FILE_FORMATS"]
