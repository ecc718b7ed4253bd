"""Ranking (margin) loss: the TVDIM inter-modality term."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tvdim.losses import ranking_loss, ranking_loss_from_scores

# s_ij = similarity of image i with text j
S = torch.tensor([[0.9, 0.85, 0.8],
                  [0.3, 0.5, 0.4],
                  [0.2, 0.6, 0.7]])


def test_sum_hinge_hand_computed():
    # margin 0.2. image->text rows: [m - s_ii + s_ij]_+ over j != i
    #   row 0: (0.2-0.9+0.85)=0.15, (0.2-0.9+0.8)=0.10            -> 0.25
    #   row 1: (0.2-0.5+0.3)=0.00, (0.2-0.5+0.4)=0.10             -> 0.10
    #   row 2: (0.2-0.7+0.2)<0,    (0.2-0.7+0.6)=0.10             -> 0.10
    # text->image rows use S^T: row i, column j = S[j, i]
    #   row 0: (0.2-0.9+0.3)<0, (0.2-0.9+0.2)<0                    -> 0
    #   row 1: (0.2-0.5+0.85)=0.55, (0.2-0.5+0.6)=0.30             -> 0.85
    #   row 2: (0.2-0.7+0.8)=0.30, (0.2-0.7+0.4)<0                 -> 0.30
    # mean over rows of (i2t + t2i) = (0.25 + 0.95 + 0.40) / 3
    got = ranking_loss_from_scores(S, S.T, margin=0.2, hinge="sum")
    assert got.item() == pytest.approx(1.6 / 3, abs=1e-6)


def test_max_hinge_hand_computed():
    # hardest negative only: i2t rows 0.15, 0.10, 0.10; t2i rows 0, 0.55, 0.30
    got = ranking_loss_from_scores(S, S.T, margin=0.2, hinge="max")
    assert got.item() == pytest.approx((0.15 + 0.65 + 0.40) / 3, abs=1e-6)


def _loop_rank(s_i2t, s_t2i, margin, hinge, pos_offset=0, valid_rows=None, valid_cols=None, gamma=2.0):
    b, n = s_i2t.shape
    totals = []
    for i in range(b):
        p = pos_offset + i
        tot = 0.0
        for s in (s_i2t, s_t2i):
            negs = [j for j in range(n) if j != p and (valid_cols is None or bool(valid_cols[j]))]
            if hinge == "logistic":
                hardest = max((float(s[i, j]) for j in negs), default=-margin)
                tot += float(torch.log1p(torch.exp(torch.tensor(gamma * (margin - float(s[i, p]))))))
                tot += float(torch.log1p(torch.exp(torch.tensor(gamma * (margin + hardest)))))
                continue
            hs = [max(0.0, margin - float(s[i, p]) + float(s[i, j])) for j in negs]
            tot += (sum(hs) if hinge == "sum" else max(hs, default=0.0))
        totals.append(tot)
    rows = [i for i in range(b) if valid_rows is None or bool(valid_rows[i])]
    return sum(totals[i] for i in rows) / max(1, len(rows))


@pytest.mark.parametrize("hinge", ["sum", "max", "logistic"])
@pytest.mark.parametrize("offset", [0, 2])
def test_matches_loop_for_every_hinge(hinge, offset):
    g = torch.Generator().manual_seed(0)
    s1, s2 = torch.rand(3, 6, generator=g) * 2 - 1, torch.rand(3, 6, generator=g) * 2 - 1
    got = ranking_loss_from_scores(s1, s2, pos_offset=offset, margin=0.3, hinge=hinge, gamma=3.0)
    assert got.item() == pytest.approx(_loop_rank(s1, s2, 0.3, hinge, offset, gamma=3.0), abs=1e-5)


def test_logistic_formula_single_row():
    # B=1, N=2: s_ii = 0.5, the only negative 0.1 (both directions the same matrix)
    s = torch.tensor([[0.5, 0.1]])
    m, gamma = 0.2, 2.0
    one_dir = (torch.log1p(torch.exp(torch.tensor(gamma * (m - 0.5))))
               + torch.log1p(torch.exp(torch.tensor(gamma * (m + 0.1)))))
    got = ranking_loss_from_scores(s, s, margin=m, hinge="logistic", gamma=gamma)
    assert got.item() == pytest.approx(2 * one_dir.item(), abs=1e-6)


def test_zero_when_true_pairs_beat_negatives_by_margin():
    g = torch.Generator().manual_seed(1)
    off = torch.rand(5, 5, generator=g) * 0.7  # all off-diagonal <= 0.7
    s = off.fill_diagonal_(1.0)  # 1.0 - 0.2 = 0.8 > 0.7
    for hinge in ("sum", "max"):
        assert ranking_loss_from_scores(s, s.T, margin=0.2, hinge=hinge).item() == 0.0
    # and the gradient is exactly zero: a satisfied hinge stops pulling
    s = s.clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(ranking_loss_from_scores(s, s.T, margin=0.2), s)
    assert bool((gr == 0).all())


def test_margin_boundary_just_violated_is_positive():
    s = torch.tensor([[1.0, 0.85], [0.0, 1.0]])  # 0.2 - 1 + 0.85 = 0.05 > 0
    assert ranking_loss_from_scores(s, s.T, margin=0.2).item() == pytest.approx((0.05 + 0.05) / 2, abs=1e-6)


def test_ranking_loss_features_aligned_zero_shuffled_positive():
    d = 16
    img = torch.eye(8, d) + 0.01 * torch.randn(8, d, generator=torch.Generator().manual_seed(2))
    txt = img.clone()
    aligned = ranking_loss(img, txt)
    assert aligned.item() == 0.0
    g = torch.Generator().manual_seed(3)
    shuffled = []
    for _ in range(5):
        perm = torch.randperm(8, generator=g)
        shuffled.append(ranking_loss(img, txt[perm]).item())
    assert sum(shuffled) / len(shuffled) > aligned.item() + 0.5


def test_ranking_loss_is_scale_invariant_cosine():
    g = torch.Generator().manual_seed(4)
    img, txt = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    a = ranking_loss(img, txt)
    b = ranking_loss(img * 7.0, txt * 0.1)
    assert torch.allclose(a, b, atol=1e-6)
    s = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    assert torch.allclose(a, ranking_loss_from_scores(s, s.T), atol=1e-6)


def test_ranking_loss_global_batch_with_offset():
    g = torch.Generator().manual_seed(5)
    img_all, txt_all = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    local = ranking_loss(img_all[2:4], txt_all[2:4], img_all, txt_all, pos_offset=2)
    ni, nt = F.normalize(img_all, dim=-1), F.normalize(txt_all, dim=-1)
    ref = _loop_rank(ni[2:4] @ nt.T, nt[2:4] @ ni.T, 0.2, "sum", pos_offset=2)
    assert local.item() == pytest.approx(ref, abs=1e-5)


def test_valid_rows_contribute_nothing_and_invalid_cols_are_not_negatives():
    g = torch.Generator().manual_seed(6)
    s1, s2 = torch.rand(4, 4, generator=g), torch.rand(4, 4, generator=g)
    valid = torch.tensor([True, False, True, True])
    got = ranking_loss_from_scores(s1, s2, valid_rows=valid, valid_cols=valid)
    ref = _loop_rank(s1, s2, 0.2, "sum", valid_rows=valid, valid_cols=valid)
    assert got.item() == pytest.approx(ref, abs=1e-6)
    # changing anything in the invalid row / column (no caption) changes nothing
    t1, t2 = s1.clone(), s2.clone()
    t1[1], t2[1] = 5.0, -5.0
    t1[:, 1], t2[:, 1] = 5.0, 5.0
    assert torch.allclose(ranking_loss_from_scores(t1, t2, valid_rows=valid, valid_cols=valid), got)
    # through the feature-level API: valid defaults valid_all to the same mask
    img, txt = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    a = ranking_loss(img, txt, valid=valid)
    txt2 = txt.clone()
    txt2[1] = torch.randn(8, generator=g) * 10
    img2 = img.clone()
    img2[1] = torch.randn(8, generator=g)
    assert torch.allclose(a, ranking_loss(img2, txt2, valid=valid), atol=1e-6)


def test_no_valid_row_gives_zero():
    s = torch.rand(3, 3)
    assert ranking_loss_from_scores(s, s, valid_rows=torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_unknown_hinge_raises():
    with pytest.raises(ValueError, match="hinge"):
        ranking_loss_from_scores(S, S.T, hinge="bogus")


def test_ranking_loss_global_batch_with_separate_masks():
    g = torch.Generator().manual_seed(7)
    img_all, txt_all = torch.randn(6, 8, generator=g) * 4, torch.randn(6, 8, generator=g) * 0.3
    valid_all = torch.tensor([True, True, False, True, True, True])
    valid = torch.tensor([True, False])  # local rows 2, 3: row 3 left out although it is a usable negative
    got = ranking_loss(img_all[2:4], txt_all[2:4], img_all, txt_all, pos_offset=2, margin=0.3, valid=valid,
                       valid_all=valid_all)
    ni, nt = F.normalize(img_all, dim=-1), F.normalize(txt_all, dim=-1)
    ref = _loop_rank(ni[2:4] @ nt.T, nt[2:4] @ ni.T, 0.3, "sum", pos_offset=2, valid_rows=valid,
                     valid_cols=valid_all)
    assert got.item() == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("gamma", [None, 2.0, 5.0])
def test_logistic_gamma_reaches_the_loss(gamma):
    """The default gamma is 2; a given gamma goes through ranking_loss to the scores."""
    g = torch.Generator().manual_seed(8)
    img, txt = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    kw = {} if gamma is None else {"gamma": gamma}
    got = ranking_loss(img, txt, hinge="logistic", margin=0.25, **kw)
    s = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    ref = _loop_rank(s, s.T, 0.25, "logistic", gamma=2.0 if gamma is None else gamma)
    assert got.item() == pytest.approx(ref, abs=1e-5)
    assert ranking_loss_from_scores(s, s.T, margin=0.25, hinge="logistic", **kw).item() == pytest.approx(ref, abs=1e-5)


def test_logistic_without_any_negative_uses_minus_margin():
    """No usable negative (every other caption missing): the negative part is log(1 + e^{gamma (m - m)}) = log 2."""
    s = torch.tensor([[0.6, 0.9, 0.1], [0.2, 0.3, 0.4], [0.5, 0.5, 0.5]])
    only = torch.tensor([True, False, False])
    got = ranking_loss_from_scores(s, s.T, margin=0.2, hinge="logistic", gamma=2.0, valid_rows=only, valid_cols=only)
    pos = math.log1p(math.exp(2.0 * (0.2 - 0.6)))
    assert got.item() == pytest.approx(2 * (pos + math.log(2.0)), abs=1e-6)


def test_one_valid_row_is_its_own_mean():
    one = torch.tensor([False, True, False])
    got = ranking_loss_from_scores(S, S.T, margin=0.2, valid_rows=one)
    assert got.item() == pytest.approx(0.10 + 0.85, abs=1e-6)  # row 1 of test_sum_hinge_hand_computed
