"""Caption-noise detector: score every image-text pair of a dataset with a trained checkpoint.

``tvdim data score-pairs CHECKPOINT DATA --out FILE`` (registered in :mod:`tvdim.data.tools`) writes the pairs
sorted from most to least suspicious, so a user can audit or clean their data. Each pair gets:

* ``agreement``: cosine similarity of its image and caption features;
* ``loss``: its mean bidirectional hinge ``[m - s_ii + s_ij]_+ + [m - s_ii + s_ji]_+`` against every other pair
  (the ranking term's per-pair loss, scaled to one negative); the suspicion score, higher = more suspicious;
* ``rank_i2t`` / ``rank_t2i``: fraction of other captions (images) that score at least as high as its own;
* ``clean_probability``: posterior of the low-loss component of a 2-Gaussian mixture over all pairs' losses
  (the ``loss.robust=gmm`` estimate).

With a manifest of known corrupted keys (``tvdim data corrupt-captions`` writes ``corrupted.json``), the detector
is scored: AUROC of ``loss`` and precision among the top ``n_noisy`` pairs (precision at the true noise rate).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..losses.robust import clean_probability, fit_two_gaussians


@torch.no_grad()
def pair_scores(img: torch.Tensor, txt: torch.Tensor, margin: float = 0.2, chunk: int = 1024,
                group: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-pair scores from features of N aligned pairs.

    Args:
        img, txt: ``[N, D]`` image and caption features of the same N pairs (row i = pair i), N >= 2.
        margin: the hinge margin m. chunk: rows scored at once (memory ``chunk x N``).
        group: ``[N]`` image id of each pair (several captions of one image); the other pairs of the same image
            are neither negatives nor competitors of a pair (default: every pair its own image).
    Returns:
        dict of ``[N]`` tensors: ``agreement``, ``loss``, ``rank_i2t``, ``rank_t2i``, ``clean_probability``.
        ``loss``: the mean hinge over the pair's negatives both ways; ``rank_*``: the fraction of them scoring at
        least as high as the pair itself (0 = first, 1 = last).
    """
    n = img.shape[0]
    img, txt = F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)
    group = torch.arange(n) if group is None else group.long()
    diag = (img * txt).sum(1)  # [N]
    loss, r_i2t, r_t2i = torch.zeros(n), torch.zeros(n), torch.zeros(n)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        same = group[lo:hi].unsqueeze(1) == group.unsqueeze(0)  # [c, N] itself and its image's other pairs
        n_neg = (n - same.sum(1)).clamp(min=1).float()  # [c]
        pos = diag[lo:hi].unsqueeze(1)
        for s, rank in ((img[lo:hi] @ txt.T, r_i2t), (txt[lo:hi] @ img.T, r_t2i)):  # [c, N]
            loss[lo:hi] += (margin - pos + s).clamp(min=0).masked_fill(same, 0).sum(1) / n_neg
            rank[lo:hi] = ((s >= pos) & ~same).sum(1).float() / n_neg  # ties count against the pair
    p_clean, _ = clean_probability(loss)
    return {"agreement": diag, "loss": loss, "rank_i2t": r_i2t, "rank_t2i": r_t2i, "clean_probability": p_clean}


def separation(loss: torch.Tensor) -> float:
    """Ashman's D of the two-Gaussian fit of the losses, ``sqrt(2) |mu1 - mu0| / sqrt(s0^2 + s1^2)``: above about
    2 the fit has two separate modes (right and wrong pairs); below, one hump the detector cannot split."""
    _, mu, sigma = fit_two_gaussians(loss.double())
    return float(2 ** 0.5 * (mu[1] - mu[0]).abs() / (sigma[0] ** 2 + sigma[1] ** 2).sqrt().clamp(min=1e-12))


def auroc(score: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of ``score [N]`` for the boolean ``positive [N]`` (higher score = more likely
    positive), ties counted half (Mann-Whitney U with average ranks). NaN when either class is empty."""
    positive = positive.bool()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    s = score.double()
    order = s.argsort()
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=s.dtype)
    uniq, inverse = torch.unique(s, return_inverse=True)  # average the ranks of tied scores
    sums = torch.zeros(len(uniq), dtype=s.dtype).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(uniq), dtype=s.dtype).index_add_(0, inverse, torch.ones_like(s))
    ranks = (sums / counts)[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def detection_metrics(score: torch.Tensor, noisy: torch.Tensor) -> dict[str, Any]:
    """AUROC and precision at the true noise rate (top ``n_noisy`` by score, ties broken by index)."""
    noisy = noisy.bool()
    k = int(noisy.sum())
    top = torch.sort(-score.double(), stable=True).indices[:k]
    precision = float(noisy[top].float().mean()) if k else float("nan")
    return {"n": len(score), "n_noisy": k, "auroc": auroc(score, noisy), "precision_at_noise_rate": precision}


def read_manifest(path: str | Path) -> tuple[set[str], str]:
    """Corrupted keys and their kind (``key`` or ``row``) from a ``corrupted.json`` manifest."""
    data = json.loads(Path(path).read_text())
    return {str(k) for k in data["keys"]}, data.get("key_kind", "key")


def write_scores(rows: list[dict[str, Any]], out: Path) -> None:
    """JSONL (``.jsonl``) or CSV (anything else), written under a temporary name then renamed."""
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        if out.suffix == ".jsonl":
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        else:
            w = csv.DictWriter(fh, list(rows[0]) if rows else ["key"])
            w.writeheader()
            w.writerows(rows)
    tmp.replace(out)


__all__ = ["pair_scores", "separation", "auroc", "detection_metrics", "read_manifest", "write_scores"]
