"""Robust image-text terms: mixture fit, clean probability, small-loss selection, weighted reductions."""
from __future__ import annotations

import math

import pytest
import torch

from tvdim.losses import (clean_probability, fit_two_gaussians, info_nce_from_scores, info_nce_rows, rank_pvalues,
                          ranking_loss_from_scores, ranking_loss_rows, small_loss_mask, storey_null_fraction,
                          weighted_row_mean)


def _two_clusters(n_low=30, n_high=70, low=0.0, high=5.0, std=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([low + std * torch.randn(n_low, generator=g), high + std * torch.randn(n_high, generator=g)])


def test_mixture_recovers_two_clusters():
    pi, mu, sigma = fit_two_gaussians(_two_clusters())
    assert pi.tolist() == pytest.approx([0.3, 0.7], abs=1e-3)  # component 0 = the low-mean one
    assert mu[0].item() == pytest.approx(0.0, abs=0.15) and mu[1].item() == pytest.approx(5.0, abs=0.15)
    assert sigma.tolist() == pytest.approx([0.3, 0.3], abs=0.12)


def test_mixture_is_an_em_fixed_point():
    """At convergence the M-step reproduces the parameters from the E-step responsibilities (hand formulas)."""
    x = torch.cat([_two_clusters(40, 60, 1.0, 2.0, 0.4, seed=3)]).double()
    pi, mu, sigma = fit_two_gaussians(x, iters=500)
    dens = torch.stack([pi[k] * torch.exp(-0.5 * ((x - mu[k]) / sigma[k]) ** 2) / (sigma[k] * math.sqrt(2 * math.pi))
                        for k in range(2)], 1)
    r = dens / dens.sum(1, keepdim=True)
    nk = r.sum(0)
    assert (nk / len(x)).tolist() == pytest.approx(pi.tolist(), abs=1e-6)
    assert ((r * x[:, None]).sum(0) / nk).tolist() == pytest.approx(mu.tolist(), abs=1e-6)
    assert ((r * (x[:, None] - mu) ** 2).sum(0) / nk).sqrt().tolist() == pytest.approx(sigma.tolist(), abs=1e-6)


def test_clean_probability_is_the_low_component_posterior():
    ref = _two_clusters()
    pi, mu, sigma = fit_two_gaussians(ref)
    x = torch.tensor([-0.2, 2.4, 2.6, 5.1])

    def dens(v, k):
        return pi[k].item() * math.exp(-0.5 * ((v - mu[k].item()) / sigma[k].item()) ** 2) / sigma[k].item()

    want = [dens(v, 0) / (dens(v, 0) + dens(v, 1)) for v in x.tolist()]
    p, noisy = clean_probability(x, ref)
    assert p.tolist() == pytest.approx(want, abs=1e-5)
    assert noisy == pytest.approx(0.7, abs=1e-3)
    assert p[0] > 0.99 and p[3] < 0.01  # small loss -> clean, large loss -> noisy


def test_clean_probability_defaults_to_fitting_on_its_input():
    x = _two_clusters(50, 50)
    p, noisy = clean_probability(x)
    assert noisy == pytest.approx(0.5, abs=1e-3)
    assert (p[:50] > 0.99).all() and (p[50:] < 0.01).all()


def test_small_loss_mask_hand_computed():
    losses = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.2])
    assert small_loss_mask(losses, 0.4).tolist() == [0, 1, 0, 1, 1]  # keep ceil(0.6 * 5) = 3 smallest
    assert small_loss_mask(losses, 0.0).tolist() == [1, 1, 1, 1, 1]
    valid = torch.tensor([True, True, False, True, False])  # 3 valid -> keep ceil(0.5 * 3) = 2: rows 1, 3
    assert small_loss_mask(losses, 0.5, valid).tolist() == [0, 1, 0, 1, 0]
    assert small_loss_mask(losses, 0.99).tolist() == [0, 1, 0, 0, 0]  # at least one pair is kept


def test_weighted_row_mean_divides_by_every_valid_row():
    rows = torch.tensor([1.0, 2.0, 3.0, 4.0])
    w = torch.tensor([1.0, 0.5, 0.0, 1.0])
    valid = torch.tensor([True, True, True, False])
    assert weighted_row_mean(rows, w, valid).item() == pytest.approx((1 + 1 + 0) / 3)
    assert weighted_row_mean(rows).item() == pytest.approx(2.5)
    assert weighted_row_mean(rows, valid=torch.zeros(4, dtype=torch.bool)).item() == 0.0


S = torch.tensor([[0.9, 0.85, 0.8],
                  [0.3, 0.5, 0.4],
                  [0.2, 0.6, 0.7]])


def test_ranking_rows_and_weights_hand_computed():
    # per-pair (i2t + t2i) sums of hinges at margin 0.2, from tests/losses/test_ranking_loss.py: 0.25, 0.95, 0.40
    rows = ranking_loss_rows(S, S.T, margin=0.2, hinge="sum")
    assert rows.tolist() == pytest.approx([0.25, 0.95, 0.40], abs=1e-6)
    w = torch.tensor([1.0, 0.0, 0.5])
    got = ranking_loss_from_scores(S, S.T, margin=0.2, hinge="sum", weights=w)
    assert got.item() == pytest.approx((0.25 + 0.0 + 0.20) / 3, abs=1e-6)


def test_info_nce_rows_and_weights_hand_computed():
    def ce(row, i):
        return -row[i] + math.log(sum(math.exp(v) for v in row))

    rows_t = S.T.tolist()
    want = [(ce(S[i].tolist(), i) + ce(rows_t[i], i)) / 2 for i in range(3)]
    assert info_nce_rows(S, S.T).tolist() == pytest.approx(want, abs=1e-5)
    w = torch.tensor([0.2, 1.0, 0.0])
    valid = torch.tensor([True, True, False])
    got = info_nce_from_scores(S, S.T, weights=w, valid_rows=valid)
    assert got.item() == pytest.approx((0.2 * want[0] + want[1]) / 2, abs=1e-5)


# --- storey: rank p-values and the null-fraction estimate -------------------------------------------------------
def test_rank_pvalues_hand_computed_with_offset_ties_and_unusable_columns():
    s = torch.tensor([[0.0, 0.9, 0.5, 0.2, 0.7],   # positive = column 1 (offset 1): first of 4 usable -> 1/4
                      [0.3, 0.1, 0.4, 0.8, 0.4]])  # positive = column 2 (0.4): itself and the tie 0.4 -> 2/4
    valid = torch.tensor([True, True, True, False, True])  # column 3 (0.8) is a pair without caption
    assert rank_pvalues(s, 1, valid).tolist() == pytest.approx([1 / 4, 2 / 4])
    assert rank_pvalues(s, 1).tolist() == pytest.approx([1 / 5, 3 / 5])  # all usable: 0.8 now counts


def test_storey_estimate_hand_computed_and_clipped():
    p = torch.tensor([0.1, 0.2, 0.6, 0.9, 0.3, 0.5, 0.55, 1.0])  # 4 above 0.5 (0.5 itself is not)
    assert storey_null_fraction(p) == pytest.approx(4 / (8 * 0.5))  # = 1.0
    assert storey_null_fraction(p, lam=0.75) == pytest.approx(min(1.0, 2 / (8 * 0.25)))
    assert storey_null_fraction(p[:6]) == pytest.approx(2 / (6 * 0.5))
    assert storey_null_fraction(torch.tensor([])) == 1.0


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.75])
def test_storey_tracks_the_wrong_pair_rate(rate):
    """Batches where a fraction ``rate`` of the positives are unrelated captions (random scores) and the rest are
    ranked first: the estimate follows the rate (on training losses the mixture's estimate did not)."""
    g = torch.Generator().manual_seed(0)
    n, pv = 64, []
    for _ in range(100):
        s = torch.randn(n, n, generator=g)
        clean = torch.rand(n, generator=g) >= rate
        s[clean, clean.nonzero().flatten()] = 10.0  # right captions beat every other caption
        pv.append(rank_pvalues(s))
    assert storey_null_fraction(torch.cat(pv)) == pytest.approx(rate, abs=0.03)
