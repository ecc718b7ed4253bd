"""Image <-> text retrieval recall@K."""
from __future__ import annotations

import pytest
import torch

from tvdim.eval.retrieval import retrieval_recall


def test_identical_features_recall_one():
    x = torch.randn(30, 16, generator=torch.Generator().manual_seed(0))
    r = retrieval_recall(x, x.clone())
    assert set(r) == {f"{d}_R@{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)}
    assert all(v == 1.0 for v in r.values())


def test_permuted_orthogonal_features():
    n = 20
    img = torch.eye(n)
    perm = torch.arange(n)
    perm[:8] = torch.tensor([1, 2, 3, 4, 5, 6, 7, 0])  # 8 rows moved, 12 fixed points
    txt = img[perm]
    r = retrieval_recall(img, txt)
    # pair i is (img_i, txt_i = e_perm(i)): a fixed point ranks first; a moved row has exactly one better
    # candidate (similarity 1 vs 0), so it is found at rank 2
    assert r["i2t_R@1"] == pytest.approx(12 / 20)
    assert r["t2i_R@1"] == pytest.approx(12 / 20)
    assert r["i2t_R@5"] == 1.0 and r["t2i_R@10"] == 1.0


def test_derangement_of_random_features_gives_low_recall():
    g = torch.Generator().manual_seed(1)
    img = torch.randn(50, 64, generator=g)
    txt = img.roll(1, dims=0)
    r = retrieval_recall(img, txt, ks=(1,))
    assert r == {"i2t_R@1": 0.0, "t2i_R@1": 0.0}


def test_scale_invariant_and_asymmetric_directions():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    txt = torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, 0.0]])
    r = retrieval_recall(img, txt * 5, ks=(1, 2))
    # cosines: img0=(1,0): txt0 0.995, txt1 0.0995, txt2 1.0  -> txt2 beats the true txt0: miss
    #          img1=(0,1): txt1 0.995 best                      -> hit
    #          img2=(1,1)/sqrt2: txt0 0.774, txt1 0.774, txt2 0.707 -> true txt2 is third: miss
    # t2i:     txt0 -> img0 0.995 > img2 0.774 -> hit; txt1 -> img1 hit; txt2 -> img0 1.0 > img2 0.707 -> miss
    assert r["i2t_R@1"] == pytest.approx(1 / 3) and r["t2i_R@1"] == pytest.approx(2 / 3)
    assert r["i2t_R@2"] == pytest.approx(2 / 3) and r["t2i_R@2"] == pytest.approx(1.0)
