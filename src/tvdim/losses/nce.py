"""AMDIM's multi-scale NCE (the intra-modality loss L_intra), as pure functions."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def tanh_clip(x: torch.Tensor, clip: float = 20.0) -> torch.Tensor:
    """Soft clip to ``(-clip, clip)``: ``clip * tanh(x / clip)``; ``clip <= 0`` disables it."""
    return clip * torch.tanh(x / clip) if clip > 0 else x


def _nce_rows(src: torch.Tensor, tgt_flat: torch.Tensor, pos: torch.Tensor, n: int, locs: int,
              tclip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss and summed squared raw score for a block of source rows (see :func:`amdim_nce`)."""
    raw = (src @ tgt_flat).view(src.shape[0], n, locs) / math.sqrt(src.shape[1])  # [b, N, L]
    sq_sum = raw.float().pow(2).sum()
    scores = tanh_clip(raw.float(), tclip)
    rows = torch.arange(src.shape[0], device=src.device)
    pos_scores = scores[rows, pos]  # [b, L]
    neg = scores.masked_fill(F.one_hot(pos, n).bool().unsqueeze(-1), float("-inf"))
    neg_lse = torch.logsumexp(neg.flatten(1), dim=1, keepdim=True)  # [b, 1]
    # -log(e^pos / (e^pos + sum_neg e^neg)) = softplus(lse_neg - pos)
    return F.softplus(neg_lse - pos_scores).sum(), sq_sum


def amdim_nce(src: torch.Tensor, tgt: torch.Tensor, pos_offset: int = 0, tclip: float = 20.0,
              reg_coef: float = 0.05, chunk_size: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """NCE between source vectors and every location of every target image.

    Args:
        src: ``[B, D]`` source vectors (this rank's rows).
        tgt: ``[N, D, L]`` target feature maps of N images with L locations each (N >= B: the global batch).
            Row ``i`` of ``src`` is positive with every location of ``tgt[pos_offset + i]`` and negative with every
            location of every other target image.
        tclip: tanh clip value of the scaled scores; reg_coef: weight of ``mean(raw ** 2)``.
        chunk_size: >0 computes the ``[B, N, L]`` score tensor in blocks of this many source rows (same result).
    Returns:
        ``(loss, reg)``: ``loss`` = mean over (i, positive location l) of
        ``-log(e^{s_il} / (e^{s_il} + sum_{j != i, l'} e^{s_jl'}))`` with ``s = tclip * tanh(raw / tclip)``,
        ``raw = src . tgt / sqrt(D)``; ``reg = reg_coef * mean(raw ** 2)`` over all scores (before clipping).
    """
    b, d = src.shape
    n, d2, locs = tgt.shape
    if d != d2:
        raise ValueError(f"feature sizes differ: src {list(src.shape)} vs tgt {list(tgt.shape)}")
    tgt_flat = tgt.permute(1, 0, 2).reshape(d, n * locs)  # [D, N*L]
    pos = torch.arange(b, device=src.device) + pos_offset
    step = chunk_size if chunk_size > 0 else b
    loss_sum = src.new_zeros((), dtype=torch.float32)
    sq_sum = src.new_zeros((), dtype=torch.float32)
    for start in range(0, b, step):
        ls, ss = _nce_rows(src[start:start + step], tgt_flat, pos[start:start + step], n, locs, tclip)
        loss_sum, sq_sum = loss_sum + ls, sq_sum + ss
    return loss_sum / (b * locs), reg_coef * sq_sum / (b * n * locs)


def random_locations(fmap: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random spatial location per image: ``[B, D, H, W]`` -> ``[B, D]``."""
    b, d, h, w = fmap.shape
    idx = torch.randint(h * w, (b,), device=fmap.device, generator=generator)
    return fmap.flatten(2)[torch.arange(b, device=fmap.device), :, idx]


__all__ = ["tanh_clip", "amdim_nce", "random_locations"]
