"""Robust image-text terms under noisy correspondence: per-pair weights from the distribution of per-pair losses.

Pure functions; the stateful part (a memory of recent per-pair losses, the warm-up counter) lives in
:class:`tvdim.methods.pair_weights.PairWeighting`.

Three weightings; the first two from the "noisy correspondence" literature (METHOD.md, last section):

* ``gmm`` (NCR, Huang et al. 2021, idea only): fit a two-component 1-D Gaussian mixture to per-pair losses; the
  posterior of the low-mean component is the probability that a pair is clean, used as a soft weight.
* ``small-loss`` (co-teaching line): keep the pairs with the smallest loss, dropping a fraction ``rate`` of the
  worst-agreeing ones (rate given, or estimated as the mixture weight of the high-loss component).
* ``storey``: small-loss selection whose rate is a calibrated estimate of the wrong-caption fraction. A wrong
  caption's score is exchangeable with the batch's other captions, so its rank among them is uniform: the ranks,
  read as p-values, give Storey's estimate of the null (wrong-pair) proportion (Storey 2002), which follows the true
  rate where the mixture's estimate does not (it stays near 0.5, docs/results.md).
"""
from __future__ import annotations

import math

import torch


def fit_two_gaussians(x: torch.Tensor, iters: int = 30, min_std: float = 1e-3
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EM for a two-component 1-D Gaussian mixture, deterministic.

    Args:
        x: ``[M]`` values (finite). iters: EM iterations. min_std: floor on each component's std, relative to
            the std of ``x`` (avoids a collapsed component).
    Returns:
        ``(pi, mu, sigma)``, each ``[2]`` float64, sorted so component 0 has the lower mean. Initialised by
        splitting the values at their mean (one k-means step), which stays asymmetric even when most values are
        equal (e.g. many zero hinge losses).
    """
    x = x.detach().double().flatten()
    spread = x.std() if x.numel() > 1 else x.new_tensor(1.0)
    floor = float(spread.clamp(min=1e-12)) * min_std + 1e-12
    high = x > x.mean()
    if bool(high.any()) and not bool(high.all()):
        groups = (x[~high], x[high])
        mu = torch.stack([g.mean() for g in groups])
        sigma = torch.stack([g.std(unbiased=False) for g in groups]).clamp(min=floor)
        pi = torch.stack([x.new_tensor(len(g) / len(x)) for g in groups])
    else:  # all values equal: one component is enough, the other starts beside it
        mu, sigma, pi = x.mean().repeat(2), spread.clamp(min=floor).repeat(2), x.new_tensor([0.5, 0.5])
    for _ in range(iters):
        resp = _responsibilities(x, pi, mu, sigma)  # [M, 2]
        nk = resp.sum(0).clamp(min=1e-12)
        pi = nk / nk.sum()
        mu = (resp * x.unsqueeze(1)).sum(0) / nk
        sigma = ((resp * (x.unsqueeze(1) - mu) ** 2).sum(0) / nk).sqrt().clamp(min=floor)
    order = mu.argsort()
    return pi[order], mu[order], sigma[order]


def _responsibilities(x: torch.Tensor, pi: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``[M, 2]`` posterior of each component for each value (log-space, stable)."""
    logp = (-0.5 * ((x.unsqueeze(1) - mu) / sigma) ** 2 - sigma.log() - 0.5 * math.log(2 * math.pi)
            + pi.clamp(min=1e-12).log())
    return torch.softmax(logp, dim=1)


def clean_probability(losses: torch.Tensor, reference: torch.Tensor | None = None, iters: int = 30
                      ) -> tuple[torch.Tensor, float]:
    """Probability that each pair is clean: posterior of the low-loss component of a 2-Gaussian mixture.

    Args:
        losses: ``[N]`` per-pair losses to weight. reference: ``[M]`` values to fit the mixture on (e.g. a memory
            of recent losses including ``losses``); default ``losses`` itself.
    Returns:
        ``(p_clean [N] in [0, 1], estimated noisy fraction = mixture weight of the high-loss component)``.
    """
    fit_on = losses if reference is None else reference
    pi, mu, sigma = fit_two_gaussians(fit_on, iters)
    resp = _responsibilities(losses.detach().double().flatten(), pi, mu, sigma)
    return resp[:, 0].to(losses.dtype), float(pi[1])


def small_loss_mask(losses: torch.Tensor, rate: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the ``1 - rate`` fraction of valid pairs with the smallest loss.

    Args:
        losses: ``[N]`` per-pair losses. rate: fraction of valid pairs to drop, in [0, 1).
        valid: ``[N]`` bool, pairs that take part (others get weight 0).
    Returns:
        ``[N]`` float mask, 1 = kept; ``ceil((1 - rate) * n_valid)`` pairs are kept (at least one when any is
        valid), ties broken by index.
    """
    valid = torch.ones_like(losses, dtype=torch.bool) if valid is None else valid.bool()
    n_valid = int(valid.sum())
    keep = min(n_valid, max(1 if n_valid else 0, math.ceil((1.0 - rate) * n_valid - 1e-9)))
    score = losses.detach().float().masked_fill(~valid, float("inf"))
    order = torch.sort(score, stable=True).indices
    mask = torch.zeros_like(losses, dtype=torch.float32)
    mask[order[:keep]] = 1.0
    return mask


def rank_pvalues(scores: torch.Tensor, pos_offset: int = 0, valid_cols: torch.Tensor | None = None) -> torch.Tensor:
    """Each row's positive, ranked among the usable columns, as a p-value: ``#{j valid: s_ij >= s_ip} / #valid``.

    Args:
        scores: ``[B, N]`` image-to-text scores; row ``i``'s positive is column ``pos_offset + i``.
        valid_cols: ``[N]`` bool, columns (captions) that take part; default all. The positive counts itself.
    Returns:
        ``[B]`` in ``(0, 1]``: 1/n for a positive that beats every other caption, 1 for one that beats none. For a
        caption unrelated to its image the rank is uniform, so ``P(p > lam) = 1 - lam`` (exactly, for even n and
        lam = 0.5). Ties count against the positive.
    """
    b, n = scores.shape
    valid_cols = torch.ones(n, dtype=torch.bool, device=scores.device) if valid_cols is None else valid_cols.bool()
    s = scores.detach().float()
    pos = s[torch.arange(b, device=s.device), torch.arange(b, device=s.device) + pos_offset].unsqueeze(1)
    ahead = ((s >= pos) & valid_cols.unsqueeze(0)).sum(1).float()
    return ahead / valid_cols.sum().clamp(min=1).float()


def storey_null_fraction(pvalues: torch.Tensor, lam: float = 0.5) -> float:
    """Storey's estimate of the fraction of null (wrong) pairs: ``#{p > lam} / (M (1 - lam))``, clipped to [0, 1].

    Args: pvalues ``[M]`` in (0, 1]; lam in [0, 1). Right pairs have small p-values, so above ``lam`` the count is
    mostly wrong pairs, each of which lands there with probability ``1 - lam``. Biased upwards (conservative) when
    right pairs are still poorly ranked. Returns 1.0 for an empty input.
    """
    if pvalues.numel() == 0:
        return 1.0
    return min(1.0, float((pvalues > lam).sum()) / (pvalues.numel() * (1.0 - lam)))


def weighted_row_mean(rows: torch.Tensor, weights: torch.Tensor | None = None,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_i w_i v_i l_i / sum_i v_i``: rows with weight < 1 pull less; the divisor counts every valid row, so a
    batch judged mostly noisy contributes a smaller text term (its clean rows are not up-weighted).

    Args: rows ``[B]`` per-row losses; weights ``[B]`` in [0, 1] (default 1); valid ``[B]`` bool (default all).
    Returns: scalar; 0 when no row is valid.
    """
    w = rows.new_ones(rows.shape) if weights is None else weights.to(rows.dtype)
    v = rows.new_ones(rows.shape) if valid is None else valid.to(rows.dtype)
    return (rows * w * v).sum() / v.sum().clamp(min=1)


__all__ = ["fit_two_gaussians", "clean_probability", "small_loss_mask", "rank_pvalues", "storey_null_fraction",
           "weighted_row_mean"]
