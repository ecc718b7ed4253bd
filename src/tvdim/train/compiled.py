"""``torch.compile`` of the training step, with a fallback to eager when compiling fails."""
from __future__ import annotations

import logging
from typing import Any

import torch

from ..errors import TvdimError

log = logging.getLogger("tvdim.train")


class CompiledStep:
    """``torch.compile(model)`` that falls back to eager (with one log line) when compiling fails at the first
    call; a failure after that is the model's own and propagates."""

    def __init__(self, model: Any) -> None:
        self.eager, self.compiled, self.checked = model, torch.compile(model), False

    def __call__(self, batch: dict) -> Any:
        if self.checked:
            return self.compiled(batch)
        try:
            out = self.compiled(batch)
        except TvdimError:
            raise
        except Exception as exc:  # noqa: BLE001 (inductor / dynamo / a missing compiler: many kinds)
            log.warning("torch.compile failed (%s: %s); training continues without it (train.compile=off "
                        "skips the attempt)", type(exc).__name__, str(exc).strip().splitlines()[0][:200] if str(exc)
                        else "")
            self.compiled = self.eager
            out = self.eager(batch)
        self.checked = True
        return out


__all__ = ["CompiledStep"]
