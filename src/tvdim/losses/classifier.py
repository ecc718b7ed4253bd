"""AMDIM's classifier loss, used by the online probes, the offline probes and the supervised baseline."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .nce import tanh_clip


def classifier_loss(logits: torch.Tensor, labels: torch.Tensor, clip: float = 10.0,
                    reg_coef: float = 1e-3) -> torch.Tensor:
    """Cross-entropy on ``clip * tanh(logits / clip)`` plus ``reg_coef * mean(logits ** 2)``.

    Args: logits ``[B, C]``; labels ``[B]`` class indices, ``-1`` = unlabelled (ignored).
    Returns: scalar (0 when no row is labelled).
    """
    keep = labels >= 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    logits = logits[keep].float()
    return F.cross_entropy(tanh_clip(logits, clip), labels[keep]) + reg_coef * logits.pow(2).mean()


__all__ = ["classifier_loss"]
