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
