"""Image <-> text retrieval recall@K on held-out pairs (an alignment diagnostic)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def retrieval_recall(img: torch.Tensor, txt: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Pair i is (img[i], txt[i]); ``img``, ``txt``: ``[N, D]``.

    Returns ``{"i2t_R@k": ..., "t2i_R@k": ...}``: fraction of queries whose true partner ranks in the top k.
    Ties are broken pessimistically: a candidate scoring the same as the true partner, or NaN, ranks above it, and
    a NaN true score is never a hit; so constant, zero or NaN features (a collapsed encoder) score 0, never 100 %.
    """
    with torch.no_grad():  # a block, not a decorator: mutmut skips decorated functions
        s = F.normalize(img.float(), dim=1) @ F.normalize(txt.float(), dim=1).T
        n = s.shape[0]
        truth = torch.arange(n)
        others = ~torch.eye(n, dtype=torch.bool)
        out: dict[str, float] = {}
        for name, mat in (("i2t", s), ("t2i", s.T)):
            true = mat[truth, truth]
            beaten = mat < true.unsqueeze(1)  # False for ties and for any NaN comparison
            rank = (~beaten & others).sum(1)  # 0 = best
            for k in ks:
                out[f"{name}_R@{k}"] = ((rank < k) & ~true.isnan()).float().mean().item()
        return out
