"""Similarity matrices between global and local features, for the optional local image-text terms."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def global_local_scores(glob: torch.Tensor, local: torch.Tensor, local_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cosine similarity of each global vector with each item's local vectors.

    Args:
        glob: ``[B, D]`` global features (e.g. text sentence features).
        local: ``[N, L, D]`` local features of N items (e.g. image r7 locations, or text tokens).
        local_mask: ``[N, L]`` bool, which local vectors count (e.g. non-padding tokens); default all.
    Returns: ``[B, N]`` with entry ``(i, j) = mean_l cos(glob_i, local_j,l)`` over valid l.
    """
    g = F.normalize(glob.float(), dim=-1)
    loc = F.normalize(local.float(), dim=-1)
    sims = torch.einsum("bd,nld->bnl", g, loc)
    if local_mask is None:
        return sims.mean(-1)
    m = local_mask.to(sims.dtype).unsqueeze(0)
    return (sims * m).sum(-1) / m.sum(-1).clamp(min=1.0)
