"""Symmetric image-text InfoNCE (CLIP / ConVIRT style): the ablation and the `clip` baseline."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .robust import weighted_row_mean


def info_nce_rows(s_i2t: torch.Tensor, s_t2i: torch.Tensor, pos_offset: int = 0,
                  valid_cols: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pair symmetric InfoNCE: ``[B]``, row i = (CE(image i -> texts) + CE(text i -> images)) / 2.

    Logits ``[B, N]``; the true column of row i is ``pos_offset + i``; invalid columns leave the softmax.
    """
    b = s_i2t.shape[0]
    pos = torch.arange(b, device=s_i2t.device) + pos_offset
    total = s_i2t.new_zeros(b, dtype=torch.float32)
    own = F.one_hot(pos, s_i2t.shape[1]).bool()
    for s in (s_i2t, s_t2i):
        s = s.float()
        if valid_cols is not None:  # a row always keeps its own column, so no row is all -inf
            s = s.masked_fill(~(valid_cols.bool().unsqueeze(0) | own), float("-inf"))
        total = total + F.cross_entropy(s, pos, reduction="none")
    return total / 2


def info_nce_from_scores(s_i2t: torch.Tensor, s_t2i: torch.Tensor, pos_offset: int = 0,
                         valid_rows: torch.Tensor | None = None, valid_cols: torch.Tensor | None = None,
                         weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the two cross-entropies over logits ``[B, N]`` whose true column for row i is ``pos_offset + i``.

    Invalid columns (``valid_cols`` False: images without a caption) are removed from the softmax; invalid rows
    are left out of the mean. ``weights`` ``[B]`` (robust variants) scale each pair's term; the divisor stays the
    number of valid rows. Returns 0 when no row is valid.
    """
    return weighted_row_mean(info_nce_rows(s_i2t, s_t2i, pos_offset, valid_cols), weights, valid_rows)


def info_nce(img: torch.Tensor, txt: torch.Tensor, img_all: torch.Tensor | None = None,
             txt_all: torch.Tensor | None = None, pos_offset: int = 0, temperature: float = 0.1,
             valid: torch.Tensor | None = None, valid_all: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE on cosine similarities divided by ``temperature``.

    Args: as :func:`tvdim.losses.ranking.ranking_loss` (``[B, D]`` local, ``[N, D]`` global features).
    Returns: scalar ``(CE(img->txt) + CE(txt->img)) / 2`` averaged over valid rows.
    """
    img, txt = F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)
    img_all = img if img_all is None else F.normalize(img_all.float(), dim=-1)
    txt_all = txt if txt_all is None else F.normalize(txt_all.float(), dim=-1)
    if valid is not None and valid_all is None:
        valid_all = valid
    return info_nce_from_scores(img @ txt_all.T / temperature, txt @ img_all.T / temperature, pos_offset, valid,
                                valid_all)


__all__ = ["info_nce", "info_nce_from_scores", "info_nce_rows"]
