"""AMDIM's learning-rate schedule: linear warm-up, then one step decay late in training."""
from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, total: int, warmup: int, decay_at: float, decay_factor: float) -> float:
    """Multiplier of the base lr at ``step`` (0-based)."""
    f = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return f * (decay_factor if step >= decay_at * total else 1.0)


def build_scheduler(opt: Optimizer, total: int, warmup: int, decay_at: float, decay_factor: float) -> LambdaLR:
    return LambdaLR(opt, lambda s: lr_factor(s, total, warmup, decay_at, decay_factor))
