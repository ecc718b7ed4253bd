"""SigLIP's pairwise sigmoid image-text loss (Zhai et al. 2023)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sigmoid_rows(s_i2t: torch.Tensor, pos_offset: int = 0, log_scale: torch.Tensor | float = 2.302585,
                 bias: torch.Tensor | float = -10.0, valid_cols: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image SigLIP loss ``[B]``: row i = ``-sum_j log sigmoid(z_ij * (exp(log_scale) * s_ij + bias))`` over
    the valid text columns j, with ``z_ij = 1`` for the true column ``pos_offset + i`` and -1 otherwise.

    ``s_i2t``: ``[B, N]`` cosine scores of this rank's images against the global batch's captions. The mean over
    the global batch's images is SigLIP's loss (every image-text pair counted once). SigLIP initialises
    ``log_scale = log 10`` and ``bias = -10``; both are learnt. Columns with ``valid_cols`` False (images without
    a caption) are left out; a row's own column is always kept.
    """
    b, n = s_i2t.shape
    pos = torch.arange(b, device=s_i2t.device) + pos_offset
    own = F.one_hot(pos, n).bool()
    scale = log_scale.float().exp() if isinstance(log_scale, torch.Tensor) else math.exp(log_scale)
    logits = s_i2t.float() * scale + bias
    signs = own.float() * 2 - 1
    per_pair = -F.logsigmoid(signs * logits)
    if valid_cols is not None:
        per_pair = per_pair * (valid_cols.bool().unsqueeze(0) | own).float()
    return per_pair.sum(1)


__all__ = ["sigmoid_rows"]
