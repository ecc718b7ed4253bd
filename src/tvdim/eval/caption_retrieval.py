"""Image <-> text retrieval with several captions per image, counted the standard way (Karpathy / VSE++).

* image -> text: one query per image; it is a hit at k when ANY of its own captions ranks within the top k of
  all captions (its other captions never count against it).
* text -> image: one query per caption; a hit at k when its image ranks within the top k of all images.

Ties count against the query (pessimistic): a wrong candidate scoring exactly as high as the right one ranks
above it, and so does a NaN score; a query whose right answer scores NaN is never found (its rank is past the last).
So a collapsed encoder (all features equal) or a diverged one (NaN features) scores the floor, not a perfect
recall. With one caption
per image this is ordinary pairwise retrieval.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..loading import embed_texts


def chance_recall(captions_per_image: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k of a random ranking, the yardstick of :func:`multi_caption_recall` on the same test set.

    ``captions_per_image``: ``[N]`` counts c_i (M = their sum). image->text: image i is found when any of its c_i
    captions is among k of M captions in random order: ``1 - C(M - c_i, k) / C(M, k)``, averaged over images;
    text->image: ``min(k, N) / N``. Returns ``{"i2t_chance_R@k", "t2i_chance_R@k"}``.
    """
    counts = [int(c) for c in captions_per_image.tolist()]
    n, m = len(counts), sum(counts)
    out: dict[str, float] = {}
    for k in ks:
        kk = min(k, m)
        out[f"i2t_chance_R@{k}"] = sum(1 - math.comb(m - c, kk) / math.comb(m, kk) for c in counts) / n
        out[f"t2i_chance_R@{k}"] = min(k, n) / n
    return out


def multi_caption_recall(img: torch.Tensor, txt: torch.Tensor, owner: torch.Tensor,
                         ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k and median rank for ``img [N, D]`` and ``txt [M, D]``; caption j describes image ``owner[j]``.

    ``owner``: ``[M]`` long in ``[0, N)``, every image owning at least one caption.
    Returns ``{"i2t_R@k", "t2i_R@k" (fractions), "i2t_medr", "t2i_medr" (1-based median rank)}`` and the chance
    levels of :func:`chance_recall`.
    """
    with torch.no_grad():  # a block, not a decorator: mutmut skips decorated functions
        n, m = img.shape[0], txt.shape[0]
        owner = owner.long()
        if owner.shape != (m,) or m == 0 or int(owner.min()) < 0 or int(owner.max()) >= n:
            raise ValueError(f"owner must be [M={m}] indices into {n} images")
        if torch.bincount(owner, minlength=n).min() == 0:
            raise ValueError("every image needs at least one caption")
        s = F.normalize(img.float(), dim=1) @ F.normalize(txt.float(), dim=1).T  # [N, M] cosine
        cols = torch.arange(m)
        own = torch.zeros(n, m, dtype=torch.bool)
        own[owner, cols] = True
        # NaN scores (a diverged encoder) count against the query like ties: ~(a < b) is True for ties and for NaN
        best = s.masked_fill(~own | s.isnan(), float("-inf")).max(1).values  # [N] best finite own-caption score
        i2t = (~(s < best.unsqueeze(1)) & ~own).sum(1)  # [N] 0-based: wrong captions at least as close, or NaN
        true = s[owner, cols]  # [M]
        t2i = (~(s < true.unsqueeze(0))).sum(0) - 1  # [M] 0-based: other images as close or NaN (minus itself)
        i2t_found, t2i_found = best > float("-inf"), ~true.isnan()  # no finite own score: never found
        i2t, t2i = i2t.masked_fill(~i2t_found, m), t2i.masked_fill(~t2i_found, n)  # past the last rank
        out: dict[str, float] = {}
        for name, rank, found in (("i2t", i2t, i2t_found), ("t2i", t2i, t2i_found)):
            for k in ks:
                out[f"{name}_R@{k}"] = ((rank < k) & found).float().mean().item()
            out[f"{name}_medr"] = float((rank + 1).float().median().item())  # lower median, as floor(median)+1
        out.update(chance_recall(torch.bincount(owner, minlength=n), ks))
        return out


def caption_retrieval(text_encoder: Any, tokenizer: Any, feats: torch.Tensor, captions: Sequence[Sequence[str]],
                      max_images: int = 1000, min_images: int = 10) -> dict[str, Any] | None:
    """Retrieval on the first ``max_images`` images that have a caption (``feats [N, D]``, ``captions``: N lists).

    Embeds every caption of those images. Returns None when fewer than ``min_images`` images have a caption.
    """
    keep = [i for i, caps in enumerate(captions) if any(c.strip() for c in caps)][:max_images]
    if len(keep) < max(1, min_images):
        return None
    texts, owner = [], []
    for row, i in enumerate(keep):
        for c in captions[i]:
            if c.strip():
                texts.append(c)
                owner.append(row)
    txt = embed_texts(text_encoder, tokenizer, texts).float().cpu()
    rec = multi_caption_recall(feats[keep], txt, torch.tensor(owner))
    return {"n_images": len(keep), "n_pairs": len(texts), **rec}


__all__ = ["multi_caption_recall", "caption_retrieval"]
