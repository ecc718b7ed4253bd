"""Ranking (margin) losses for image-text pairs: the inter-modality term of TVDIM."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .robust import weighted_row_mean


def _mask(scores: torch.Tensor, pos: torch.Tensor, valid_cols: torch.Tensor | None) -> torch.Tensor:
    """Boolean ``[B, N]``: True where column j is a usable negative for row i."""
    neg = ~F.one_hot(pos, scores.shape[1]).bool()
    if valid_cols is not None:
        neg &= valid_cols.bool().unsqueeze(0)
    return neg


def ranking_loss_rows(s_i2t: torch.Tensor, s_t2i: torch.Tensor, pos_offset: int = 0, margin: float = 0.2,
                      hinge: str = "sum", valid_cols: torch.Tensor | None = None, gamma: float = 2.0) -> torch.Tensor:
    """Per-pair bidirectional ranking loss: ``[B]``, row i = image->text term + text->image term of pair i.

    Arguments as :func:`ranking_loss_from_scores` (no row selection or weighting here).
    """
    b = s_i2t.shape[0]
    pos = torch.arange(b, device=s_i2t.device) + pos_offset
    total = s_i2t.new_zeros(b, dtype=torch.float32)
    for s in (s_i2t, s_t2i):
        s = s.float()
        s_pos = s.gather(1, pos.unsqueeze(1))  # [B, 1]
        neg = _mask(s, pos, valid_cols)
        if hinge == "logistic":
            hardest = s.masked_fill(~neg, float("-inf")).amax(dim=1)
            hardest = torch.where(torch.isfinite(hardest), hardest, torch.full_like(hardest, -margin))
            total = total + F.softplus(gamma * (margin - s_pos.squeeze(1))) + F.softplus(gamma * (margin + hardest))
            continue
        h = (margin - s_pos + s).clamp(min=0).masked_fill(~neg, 0.0)
        if hinge == "sum":
            total = total + h.sum(dim=1)
        elif hinge == "max":
            total = total + h.amax(dim=1)
        else:
            raise ValueError(f"hinge must be 'sum', 'max' or 'logistic', got {hinge!r}")
    return total


def ranking_loss_from_scores(s_i2t: torch.Tensor, s_t2i: torch.Tensor, pos_offset: int = 0, margin: float = 0.2,
                             hinge: str = "sum", valid_rows: torch.Tensor | None = None,
                             valid_cols: torch.Tensor | None = None, gamma: float = 2.0,
                             weights: torch.Tensor | None = None) -> torch.Tensor:
    """Bidirectional ranking loss on similarity matrices.

    Args:
        s_i2t: ``[B, N]``; ``s_i2t[i, j]`` = similarity of local image i with (global) text j.
        s_t2i: ``[B, N]``; ``s_t2i[i, j]`` = similarity of local text i with (global) image j.
            The true pair of row i is column ``pos_offset + i``.
        margin: m. hinge: ``sum`` -> ``sum_j [m - s_ii + s_ij]_+`` (default); ``max`` -> hardest negative only
            (VSE++); ``logistic`` -> ``log(1 + e^{gamma (m - s_ii)}) + log(1 + e^{gamma (m + max_j s_ij)})``
            (CR-CNN style with m+ = m- = m).
        valid_rows: ``[B]`` bool, rows (pairs) that take part; valid_cols: ``[N]`` bool, usable negatives.
        weights: ``[B]`` per-pair weights in [0, 1] (robust variants: probability the pair is clean); default 1.
    Returns:
        scalar: ``sum_i w_i (image->text term + text->image term) / #valid rows``; 0 when no row is valid.
    """
    rows = ranking_loss_rows(s_i2t, s_t2i, pos_offset, margin, hinge, valid_cols, gamma)
    return weighted_row_mean(rows, weights, valid_rows)


def ranking_loss(img: torch.Tensor, txt: torch.Tensor, img_all: torch.Tensor | None = None,
                 txt_all: torch.Tensor | None = None, pos_offset: int = 0, margin: float = 0.2, hinge: str = "sum",
                 valid: torch.Tensor | None = None, valid_all: torch.Tensor | None = None,
                 gamma: float = 2.0) -> torch.Tensor:
    """Ranking loss on L2-normalised global features (cosine similarities).

    Args:
        img, txt: ``[B, D]`` this rank's image and text features (normalised inside).
        img_all, txt_all: ``[N, D]`` the global batch (gathered across ranks); default = img, txt.
        valid / valid_all: ``[B]`` / ``[N]`` bool, which pairs have a caption (images without one are skipped).
    Returns: scalar, see :func:`ranking_loss_from_scores`.
    """
    img, txt = F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)
    img_all = img if img_all is None else F.normalize(img_all.float(), dim=-1)
    txt_all = txt if txt_all is None else F.normalize(txt_all.float(), dim=-1)
    if valid is not None and valid_all is None:
        valid_all = valid
    return ranking_loss_from_scores(img @ txt_all.T, txt @ img_all.T, pos_offset, margin, hinge, valid, valid_all,
                                    gamma)


__all__ = ["ranking_loss", "ranking_loss_from_scores", "ranking_loss_rows"]
