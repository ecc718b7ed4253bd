"""The ``classes.json`` file (label i = names[i]): reading it, and the label check readers apply with it. Below
the readers (data/formats) and :mod:`tvdim.data.sources`; the discovery itself is :mod:`tvdim.data.classes`."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError
from .sample import BadSample

CLASSES_FILE = "classes.json"


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


def check_label(label: int, num_classes: int, key: str) -> BadSample | None:
    """A :class:`BadSample` for a label outside ``0 .. num_classes-1`` of a ``classes.json`` (``num_classes`` 0 =
    no names file: nothing is checked; negative labels mean 'unlabelled' and pass)."""
    if num_classes and label >= num_classes:
        return BadSample(key, f"label {label} is outside the {num_classes} classes of {CLASSES_FILE} "
                              f"(0..{num_classes - 1})")
    return None


__all__ = ["CLASSES_FILE", "read_class_names", "check_label"]
