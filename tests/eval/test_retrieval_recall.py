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
    # pair i is (img_i, txt_i = e_perm(i)): a fixed point ranks first; a moved row has one better candidate
    # (similarity 1 vs 0) and 18 that tie with its true partner at 0: ties count against it, so it ranks last
    assert r["i2t_R@1"] == pytest.approx(12 / 20)
    assert r["t2i_R@1"] == pytest.approx(12 / 20)
    assert r["i2t_R@5"] == pytest.approx(12 / 20) and r["t2i_R@10"] == pytest.approx(12 / 20)
    r = retrieval_recall(img, txt, ks=(19, 20))
    assert r["i2t_R@19"] == pytest.approx(12 / 20) and r["i2t_R@20"] == 1.0 and r["t2i_R@20"] == 1.0


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


@pytest.mark.parametrize("value", [1.0, 0.0])
def test_constant_features_never_count_as_hits(value):
    """A collapsed encoder (every feature the same, or all zero) ties every candidate with the true one: ties count
    against the true item, so recall@k is 0 until k reaches the whole gallery."""
    img = torch.full((30, 8), value)
    r = retrieval_recall(img, img.clone(), ks=(1, 5, 10, 29, 30))
    for d in ("i2t", "t2i"):
        assert r[f"{d}_R@1"] == 0.0 and r[f"{d}_R@5"] == 0.0 and r[f"{d}_R@10"] == 0.0
        assert r[f"{d}_R@29"] == 0.0  # 29 others tie with the true partner: it ranks last
        assert r[f"{d}_R@30"] == 1.0


def test_ties_with_the_true_item_count_against_it():
    img = torch.eye(4)
    txt = torch.stack([img[0], img[0], img[2], img[3]])  # text 1 duplicates text 0
    r = retrieval_recall(img, txt, ks=(1, 2, 4))
    # cosines img_i . txt_j: img0 [1 1 0 0], img1 [0 0 0 0], img2 [0 0 1 0], img3 [0 0 0 1]
    # i2t: img0 ties its true text with text 1 -> rank 2; img1 scores 0 everywhere -> rank 4; img2, img3 -> rank 1
    # t2i: txt0 [1 0 0 0] -> rank 1; txt1 [1 0 0 0] but its true image 1 scores 0: img0 beats it, 2 and 3 tie
    #      -> rank 4; txt2, txt3 -> rank 1
    assert r["i2t_R@1"] == pytest.approx(2 / 4) and r["i2t_R@2"] == pytest.approx(3 / 4)
    assert r["t2i_R@1"] == pytest.approx(3 / 4) and r["t2i_R@2"] == pytest.approx(3 / 4)
    assert r["i2t_R@4"] == 1.0 and r["t2i_R@4"] == 1.0


@pytest.mark.parametrize("where", ["img", "txt", "one_row"])
def test_nan_features_count_against_the_true_item(where):
    g = torch.Generator().manual_seed(2)
    img = torch.randn(12, 8, generator=g)
    txt = img.clone()
    if where == "img":
        img[:] = float("nan")
    elif where == "txt":
        txt[:] = float("nan")
    else:
        txt[3] = float("nan")  # one NaN caption: a miss for its image, and a miss for every image it is scored by
    r = retrieval_recall(img, txt, ks=(1, 5, 12))
    if where == "one_row":
        assert r["i2t_R@1"] == 0.0  # each image sees the NaN text 3 as a candidate it cannot beat
        assert r["t2i_R@1"] == pytest.approx(11 / 12)  # text 3's query is a miss; the others are exact
        assert r["i2t_R@12"] == pytest.approx(11 / 12)  # image 3's true text is NaN: a miss at any k
    else:
        assert all(v == 0.0 for v in r.values()), r
