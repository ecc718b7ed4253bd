"""Symmetric image-text InfoNCE against cross-entropy written out by hand."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tvdim.losses import info_nce, info_nce_from_scores


def _hand(s_i2t, s_t2i, offset=0, valid_rows=None, valid_cols=None):
    b, n = s_i2t.shape
    per_row = []
    for i in range(b):
        p = offset + i
        cols = [j for j in range(n) if j == p or valid_cols is None or bool(valid_cols[j])]
        tot = 0.0
        for s in (s_i2t, s_t2i):
            lse = math.log(sum(math.exp(float(s[i, j])) for j in cols))
            tot += lse - float(s[i, p])
        per_row.append(tot / 2)
    rows = [i for i in range(b) if valid_rows is None or bool(valid_rows[i])]
    return sum(per_row[i] for i in rows) / max(1, len(rows))


def test_info_nce_equals_cross_entropy_by_hand():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    t = 0.1
    logits = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T / t
    target = torch.arange(5)
    expected = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    assert torch.allclose(info_nce(img, txt, temperature=t), expected, atol=1e-5)
    assert info_nce(img, txt, temperature=t).item() == pytest.approx(_hand(logits, logits.T), abs=1e-4)


def test_info_nce_temperature_matters():
    g = torch.Generator().manual_seed(1)
    img, txt = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    assert not torch.allclose(info_nce(img, txt, temperature=0.1), info_nce(img, txt, temperature=1.0))


def test_info_nce_offset_global_batch():
    g = torch.Generator().manual_seed(2)
    s1, s2 = torch.randn(2, 6, generator=g), torch.randn(2, 6, generator=g)
    got = info_nce_from_scores(s1, s2, pos_offset=3)
    assert got.item() == pytest.approx(_hand(s1, s2, offset=3), abs=1e-5)


def test_info_nce_masks():
    g = torch.Generator().manual_seed(3)
    s1, s2 = torch.randn(5, 5, generator=g) * 3, torch.randn(5, 5, generator=g) * 3
    valid = torch.tensor([True, True, False, True, False])
    got = info_nce_from_scores(s1, s2, valid_rows=valid, valid_cols=valid)
    assert got.item() == pytest.approx(_hand(s1, s2, valid_rows=valid, valid_cols=valid), abs=1e-5)
    t1 = s1.clone()
    t1[:, 2] = 100.0  # a huge score in an invalid column is not in any softmax of a valid row
    t1[4] = -100.0
    assert torch.allclose(info_nce_from_scores(t1, s2, valid_rows=valid, valid_cols=valid), got, atol=1e-6)
    assert info_nce_from_scores(s1, s2, valid_rows=torch.zeros(5, dtype=torch.bool)).item() == 0.0


def test_info_nce_gradient_finite_with_masks():
    s1 = torch.randn(4, 4, requires_grad=True)
    valid = torch.tensor([True, False, True, True])
    loss = info_nce_from_scores(s1, s1.T, valid_rows=valid, valid_cols=valid)
    (gr,) = torch.autograd.grad(loss, s1)
    assert bool(torch.isfinite(gr).all())


def test_info_nce_global_batch_with_masks_by_hand():
    """This rank holds rows 2..4 of a global batch of 7; captions of global rows 1 and 5 are missing."""
    g = torch.Generator().manual_seed(4)
    img_all, txt_all = torch.randn(7, 8, generator=g) * 3, torch.randn(7, 8, generator=g) * 0.5
    valid_all = torch.tensor([True, False, True, True, True, False, True])
    valid = valid_all[2:5].clone()
    valid[1] = False  # a local row can be masked out on its own
    t = 0.2
    got = info_nce(img_all[2:5], txt_all[2:5], img_all, txt_all, pos_offset=2, temperature=t, valid=valid,
                   valid_all=valid_all)
    ni, nt = F.normalize(img_all, dim=-1), F.normalize(txt_all, dim=-1)
    want = _hand(ni[2:5] @ nt.T / t, nt[2:5] @ ni.T / t, offset=2, valid_rows=valid, valid_cols=valid_all)
    assert got.item() == pytest.approx(want, abs=1e-5)
    # every input is cosine-normalised: scaling a gathered row changes nothing
    scaled_img, scaled_txt = img_all.clone(), txt_all.clone()
    scaled_img[6] *= 40.0
    scaled_txt[0] *= 0.01
    again = info_nce(img_all[2:5], txt_all[2:5], scaled_img, scaled_txt, pos_offset=2, temperature=t,
                     valid=valid, valid_all=valid_all)
    assert torch.allclose(again, got, atol=1e-6)
    # valid alone also masks the columns (single process: the batch is the global batch)
    local = info_nce(img_all, txt_all, temperature=t, valid=valid_all)
    want = _hand(ni @ nt.T / t, nt @ ni.T / t, valid_rows=valid_all, valid_cols=valid_all)
    assert local.item() == pytest.approx(want, abs=1e-5)


def test_info_nce_default_temperature_is_0_1():
    g = torch.Generator().manual_seed(5)
    img, txt = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    assert torch.equal(info_nce(img, txt), info_nce(img, txt, temperature=0.1))


def test_info_nce_masked_columns_beyond_the_last_positive():
    """Global batch wider than this rank's positives (rank 0 of 2): the mask covers every column."""
    g = torch.Generator().manual_seed(6)
    s1, s2 = torch.randn(2, 6, generator=g), torch.randn(2, 6, generator=g)
    cols = torch.tensor([True, True, False, True, True, False])
    got = info_nce_from_scores(s1, s2, valid_cols=cols)
    assert got.item() == pytest.approx(_hand(s1, s2, valid_cols=cols), abs=1e-5)


def test_info_nce_one_valid_row_is_its_own_mean():
    g = torch.Generator().manual_seed(7)
    s1, s2 = torch.randn(3, 3, generator=g), torch.randn(3, 3, generator=g)
    one = torch.tensor([False, True, False])
    got = info_nce_from_scores(s1, s2, valid_rows=one)
    assert got.item() == pytest.approx(_hand(s1, s2, valid_rows=one), abs=1e-5)
