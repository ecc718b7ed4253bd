"""Per-pair weights for the image-text term under noisy captions (``loss.robust``): the stateful part.

Keeps a ring memory of recent per-pair losses (the global batch's, so every rank holds the same values) and turns
each new batch's per-pair losses into weights with the pure functions of :mod:`tvdim.losses.robust`:

* ``gmm``: weight = probability the pair is clean, from a 2-Gaussian mixture fitted to the memory (NCR's idea);
* ``small-loss``: weight 1 for the ``1 - rate`` fraction of pairs with the smallest loss, 0 for the rest; ``rate`` =
  ``loss.robust_drop``, or the mixture's estimate of the noisy fraction when that is negative.

During the first ``loss.robust_warmup`` training steps every weight is 1 (the encoders cannot yet tell a wrong
caption from a right one) while the memory fills. The memory, its fill count and the step count are buffers, so
they are saved in checkpoints and a resumed run continues exactly.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import LossConfig
from ..losses.robust import clean_probability, small_loss_mask

MIN_FIT = 32  # fewer remembered losses than this: no mixture is fitted, weights stay 1


class PairWeighting(nn.Module):
    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.mode, self.warmup, self.drop = cfg.robust, cfg.robust_warmup, cfg.robust_drop
        self.register_buffer("memory", torch.zeros(cfg.robust_memory))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))  # values written so far
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # training steps seen
        self.last: dict[str, torch.Tensor] = {}

    def remember(self, values: torch.Tensor) -> None:
        """Append ``[K]`` values to the ring memory (the oldest are overwritten)."""
        m = self.memory.numel()
        values = values.detach().float().flatten()[-m:]
        idx = (self.filled + torch.arange(values.numel(), device=values.device)) % m
        self.memory[idx] = values.to(self.memory.device)
        self.filled += values.numel()

    def forward(self, losses: torch.Tensor, valid: torch.Tensor) -> torch.Tensor | None:
        """Weights ``[N]`` for the global batch's per-pair losses ``[N]`` (``valid`` ``[N]`` bool: pairs with a
        caption); ``None`` (= all 1) outside training, during warm-up, or before the memory holds enough values."""
        if not self.training:
            return None
        losses, valid = losses.detach().float(), valid.bool()
        self.remember(losses[valid])
        self.steps += 1
        if int(self.steps) <= self.warmup or int(self.filled) < MIN_FIT:
            return None
        reference = self.memory[: min(int(self.filled), self.memory.numel())]
        p_clean, noisy = clean_probability(losses, reference)
        if self.mode == "gmm":
            weights = p_clean.float() * valid
        else:  # small-loss
            rate = self.drop if self.drop >= 0 else noisy
            weights = small_loss_mask(losses, rate, valid)
        n = valid.sum().clamp(min=1)
        self.last = {"pairs/weight_mean": weights.sum() / n, "pairs/noisy_estimate": losses.new_tensor(noisy)}
        return weights


__all__ = ["PairWeighting", "MIN_FIT"]
