"""AMDIM's learning-rate schedule: linear warm-up, then one step decay late in training."""
from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, total: int, warmup: int, decay_at: float, decay_factor: float) -> float:
    """Multiplier of the base lr at ``step`` (0-based)."""
    f = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return f * (decay_factor if step >= decay_at * total else 1.0)


def schedule_warnings(total: int, warmup: int, decay_at: float, decay_factor: float = 0.2) -> list[str]:
    """What makes no sense in a schedule for a run of ``total`` steps (empty when it is sound)."""
    out = []
    if warmup >= total:
        out.append(f"optim.warmup_steps={warmup} is not shorter than the run (train.steps={total}): the learning rate "
                   f"peaks at {min(1.0, total / warmup):.2f}x optim.lr and never reaches it; set optim.warmup_steps "
                   f"to a fraction of the run, e.g. {max(1, total // 10)} (10 %)")
    elif warmup > total // 2:
        out.append(f"optim.warmup_steps={warmup} is more than half the run (train.steps={total}); a warm-up of "
                   f"about {max(1, total // 10)} steps (10 %) is usual")
    if decay_factor != 1.0 and 0 < warmup and decay_at * total < min(warmup, total):
        out.append(f"the learning-rate decay (optim.decay_at={decay_at} -> step {int(decay_at * total)}) starts before "
                   f"the warm-up ends (step {min(warmup, total)})")
    return out


def build_scheduler(opt: Optimizer, total: int, warmup: int, decay_at: float, decay_factor: float) -> LambdaLR:
    return LambdaLR(opt, lambda s: lr_factor(s, total, warmup, decay_at, decay_factor))
