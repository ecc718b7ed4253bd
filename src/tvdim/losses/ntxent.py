"""SimCLR's NT-Xent (normalised temperature-scaled cross entropy) between two views of each image."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_rows(z1: torch.Tensor, z2: torch.Tensor, z1_all: torch.Tensor | None = None,
                 z2_all: torch.Tensor | None = None, pos_offset: int = 0, temperature: float = 0.1) -> torch.Tensor:
    """Per-image NT-Xent ``[B]``: row i = (CE of view-1 anchor i + CE of view-2 anchor i) / 2.

    Args:
        z1, z2: ``[B, D]`` projections of this rank's images, view 1 and view 2 (normalised here).
        z1_all, z2_all: ``[N, D]`` the same for the global batch (N >= B; default: ``z1`` / ``z2``); image i of
            this rank is row ``pos_offset + i`` there.
    The anchor ``z1[i]`` has logits ``cos(z1[i], z1_all[j]) / T`` for ``j != pos_offset + i`` and
    ``cos(z1[i], z2_all[j]) / T`` for every j; its positive is ``z2_all[pos_offset + i]``; symmetrically for view 2.
    The mean of the rows over the global batch is SimCLR's loss (2N anchors, 2N - 2 negatives each).
    """
    z1_all = z1 if z1_all is None else z1_all
    z2_all = z2 if z2_all is None else z2_all
    b, n = z1.shape[0], z1_all.shape[0]
    a1, a2 = F.normalize(z1.float(), dim=-1), F.normalize(z2.float(), dim=-1)
    c1, c2 = F.normalize(z1_all.float(), dim=-1), F.normalize(z2_all.float(), dim=-1)
    pos = torch.arange(b, device=z1.device) + pos_offset
    self_mask = F.one_hot(pos, n).bool()  # [B, N]: an anchor is not its own negative
    total = z1.new_zeros(b, dtype=torch.float32)
    for anchor, same, other in ((a1, c1, c2), (a2, c2, c1)):
        logits_same = (anchor @ same.T / temperature).masked_fill(self_mask, float("-inf"))
        logits_other = anchor @ other.T / temperature
        total = total + F.cross_entropy(torch.cat([logits_other, logits_same], dim=1), pos, reduction="none")
    return total / 2


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's loss on one process: the mean of :func:`nt_xent_rows` (``[B, D]`` each -> scalar)."""
    return nt_xent_rows(z1, z2, temperature=temperature).mean()


__all__ = ["nt_xent_rows", "nt_xent"]
