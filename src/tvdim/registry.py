"""One rule for every registry (backbones, data formats, probes): a name is registered once."""
from __future__ import annotations

from typing import Any, TypeVar

V = TypeVar("V")


def register(table: dict[str, Any], name: str, value: V, kind: str) -> V:
    """``table[name] = value``; :class:`ValueError` when ``name`` is taken (two entries would shadow each other)."""
    if name in table:
        raise ValueError(f"{kind} '{name}' is registered twice")
    table[name] = value
    return value


__all__ = ["register"]
