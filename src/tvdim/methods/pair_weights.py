"""Per-pair weights for the image-text term under noisy captions (``loss.robust``): the stateful part.

Keeps a ring memory of recent per-pair losses (the global batch's, so every rank holds the same values) and turns
each new batch's per-pair losses into weights with the pure functions of :mod:`tvdim.losses.robust`:

* ``gmm``: weight = probability the pair is clean, from a 2-Gaussian mixture fitted to the memory (NCR's idea);
* ``small-loss``: weight 1 for the ``1 - rate`` fraction of pairs with the smallest loss, 0 for the rest; ``rate`` =
  ``loss.robust_drop``, or the mixture's estimate of the noisy fraction when that is negative;
* ``storey``: the same selection, at the rate Storey's estimator reads off a second memory, of each pair's rank
  p-value (its caption's rank among the batch's captions): calibrated where the mixture's estimate is not.

During the first ``loss.robust_warmup`` training steps every weight is 1 (the encoders cannot yet tell a wrong
caption from a right one) while the memory fills. The memories, their fill counts and the step count are buffers, so
they are saved in checkpoints and a resumed run continues exactly.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import LossConfig
from ..losses.robust import clean_probability, small_loss_mask, storey_null_fraction

MIN_FIT = 32  # fewer remembered losses than this: no mixture is fitted, weights stay 1


class PairWeighting(nn.Module):
    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.mode, self.warmup, self.drop = cfg.robust, cfg.robust_warmup, cfg.robust_drop
        self.register_buffer("memory", torch.zeros(cfg.robust_memory))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))  # values written so far
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # training steps seen
        if self.mode == "storey":  # only here, so checkpoints of the other modes keep their keys
            self.register_buffer("pmemory", torch.zeros(cfg.robust_memory))  # rank p-values
            self.register_buffer("pfilled", torch.zeros((), dtype=torch.long))
        self.last: dict[str, torch.Tensor] = {}

    @staticmethod
    def _push(memory: torch.Tensor, filled: torch.Tensor, values: torch.Tensor) -> None:
        """Append ``[K]`` values to a ring ``memory`` in place (the oldest are overwritten); ``filled`` counts."""
        m = memory.numel()
        values = values.detach().float().flatten()[-m:]
        idx = (filled + torch.arange(values.numel(), device=values.device)) % m
        memory[idx] = values.to(memory.device)
        filled += values.numel()

    def remember(self, values: torch.Tensor) -> None:
        """Append ``[K]`` per-pair losses to the ring memory (the oldest are overwritten)."""
        self._push(self.memory, self.filled, values)

    @staticmethod
    def _recent(memory: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
        return memory[: min(int(filled), memory.numel())]

    def forward(self, losses: torch.Tensor, valid: torch.Tensor,
                pvalues: torch.Tensor | None = None) -> torch.Tensor | None:
        """Weights ``[N]`` for the global batch's per-pair losses ``[N]`` (``valid`` ``[N]`` bool: pairs with a
        caption; ``pvalues`` ``[N]``: each pair's rank p-value, needed by ``storey``); ``None`` (= all 1) outside
        training, during warm-up, or before the memory holds enough values."""
        if not self.training:
            return None
        losses, valid = losses.detach().float(), valid.bool()
        self.remember(losses[valid])
        if self.mode == "storey":
            if pvalues is None:
                raise ValueError("loss.robust=storey needs each pair's rank p-value")
            self._push(self.pmemory, self.pfilled, pvalues.detach().float()[valid])
        self.steps += 1
        if int(self.steps) <= self.warmup or int(self.filled) < MIN_FIT:
            return None
        if self.mode == "storey":
            noisy = storey_null_fraction(self._recent(self.pmemory, self.pfilled))
            weights = small_loss_mask(losses, noisy, valid)
        else:
            p_clean, noisy = clean_probability(losses, self._recent(self.memory, self.filled))
            if self.mode == "gmm":
                weights = p_clean.float() * valid
            else:  # small-loss
                rate = self.drop if self.drop >= 0 else noisy
                weights = small_loss_mask(losses, rate, valid)
        n = valid.sum().clamp(min=1)
        self.last = {"pairs/weight_mean": weights.sum() / n, "pairs/noisy_estimate": losses.new_tensor(noisy)}
        return weights


__all__ = ["PairWeighting", "MIN_FIT"]
