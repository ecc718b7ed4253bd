"""Retrieval with several captions per image: image->text counts any caption, text->image counts per caption."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tvdim.eval.caption_retrieval import caption_retrieval, chance_recall, multi_caption_recall
from tvdim.eval.retrieval import retrieval_recall


def hand_built():
    """4 images (basis vectors), 5 captions; image 0 has a misleading first caption and a right second one."""
    e = torch.eye(4)
    txt = torch.stack([e[1], e[0], F.normalize(e[1] + e[2], dim=0), e[2], e[3]])
    owner = torch.tensor([0, 0, 1, 2, 3])
    return e, txt, owner


def test_image_to_text_counts_any_caption_text_to_image_each_caption():
    img, txt, owner = hand_built()
    r = multi_caption_recall(img, txt, owner, ks=(1, 2, 5))
    # i2t, one query per image: img0's best own caption (e0) beats every other caption -> rank 1 (its misleading
    # caption e1 does not count against it); img1's own caption scores 0.707 but img0's caption e1 scores 1 ->
    # rank 2; img2, img3 -> rank 1.  R@1 = 3/4 (per-caption counting would give 3/5, first-caption-only 2/4).
    assert r["i2t_R@1"] == pytest.approx(3 / 4)
    assert r["i2t_R@2"] == 1.0
    # t2i, one query per caption: e1 (owned by img0) is closest to img1 and ties (0) with img2, img3 -> rank 4;
    # e0 -> rank 1; (e1+e2) ties img1 with img2 -> rank 2 (ties count against); e2, e3 -> rank 1.
    assert r["t2i_R@1"] == pytest.approx(3 / 5)
    assert r["t2i_R@2"] == pytest.approx(4 / 5)
    assert r["t2i_R@5"] == 1.0
    assert r["i2t_medr"] == 1.0 and r["t2i_medr"] == 1.0


def test_caption_order_within_an_image_does_not_matter():
    img, txt, owner = hand_built()
    swapped = txt[[1, 0, 2, 3, 4]]
    assert multi_caption_recall(img, txt, owner) == multi_caption_recall(img, swapped, owner)


def test_collapsed_features_score_the_floor():
    img, txt = torch.ones(5, 8), torch.ones(10, 8)
    owner = torch.arange(5).repeat_interleave(2)
    r = multi_caption_recall(img, txt, owner, ks=(1, 5, 10))
    # every wrong candidate ties with the right one: i2t rank 9 (8 wrong captions ahead), t2i rank 5
    assert r["i2t_R@1"] == 0.0 and r["i2t_R@5"] == 0.0 and r["i2t_R@10"] == 1.0
    assert r["t2i_R@1"] == 0.0 and r["t2i_R@5"] == 1.0
    assert r["i2t_medr"] == 9.0 and r["t2i_medr"] == 5.0


def test_one_caption_per_image_matches_pairwise_recall_without_ties():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(40, 16, generator=g), torch.randn(40, 16, generator=g)
    txt[:25] = img[:25] + 0.5 * txt[:25]
    r = multi_caption_recall(img, txt, torch.arange(40))
    ref = retrieval_recall(img, txt)
    for key, val in ref.items():
        assert r[key] == pytest.approx(val)
    assert 0.0 < r["i2t_R@1"] < 1.0


def reference(img, txt, owner, k):
    """Loop version of the definitions: 0-based ranks, ties counted against the query."""
    s = F.normalize(img, dim=1) @ F.normalize(txt, dim=1).T
    i2t, t2i = [], []
    for i in range(img.shape[0]):
        mine = [j for j in range(txt.shape[0]) if owner[j] == i]
        best = max(s[i, j].item() for j in mine)
        i2t.append(sum(1 for j in range(txt.shape[0]) if owner[j] != i and s[i, j].item() >= best))
    for j in range(txt.shape[0]):
        o = int(owner[j])
        t2i.append(sum(1 for i in range(img.shape[0]) if i != o and s[i, j].item() >= s[o, j].item()))
    med = lambda r: float(sorted(r)[(len(r) - 1) // 2] + 1)  # noqa: E731  lower median, 1-based
    return {"i2t": sum(r < k for r in i2t) / len(i2t), "t2i": sum(r < k for r in t2i) / len(t2i),
            "i2t_medr": med(i2t), "t2i_medr": med(t2i)}


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_loop_reference_on_random_multi_caption_data(seed):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(12, 6, generator=g)
    owner = torch.cat([torch.arange(12), torch.randint(0, 12, (14,), generator=g)])
    txt = img[owner] + 2.0 * torch.randn(26, 6, generator=g)
    r = multi_caption_recall(img, txt, owner, ks=(1, 3))
    for k in (1, 3):
        ref = reference(img, txt, owner, k)
        assert r[f"i2t_R@{k}"] == pytest.approx(ref["i2t"]) and r[f"t2i_R@{k}"] == pytest.approx(ref["t2i"])
    assert r["i2t_medr"] == ref["i2t_medr"] and r["t2i_medr"] == ref["t2i_medr"]
    assert r["t2i_medr"] > 1.0  # a non-trivial case


def test_bad_owner_rejected():
    img, txt, _ = hand_built()
    with pytest.raises(ValueError, match="at least one caption"):
        multi_caption_recall(img, txt, torch.tensor([0, 0, 1, 1, 3]))
    with pytest.raises(ValueError, match="indices"):
        multi_caption_recall(img, txt, torch.tensor([0, 0, 1, 2, 4]))


class ToyText(torch.nn.Module):
    """Text 'encoder' whose sentence feature is the basis vector named by the caption's first word."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids, mask):
        return type("Out", (), {"sentence": F.one_hot(ids[:, 0], 4).float()})()


def toy_tokenizer(texts):
    ids = torch.tensor([[int(t.split()[0])] for t in texts])
    return ids, torch.ones_like(ids)


def test_caption_retrieval_embeds_every_caption_of_captioned_images():
    feats = torch.eye(4)
    captions = [["1 misleading", "0 right"], [], ["2 x", "  "], ["3 y"]]
    res = caption_retrieval(ToyText(), toy_tokenizer, feats, captions, min_images=2)
    assert res["n_images"] == 3 and res["n_pairs"] == 4  # image 1 has no caption; the blank one is dropped
    assert res["i2t_R@1"] == 1.0  # image 0 is found through its second caption
    assert res["t2i_R@1"] == pytest.approx(3 / 4)
    assert caption_retrieval(ToyText(), toy_tokenizer, feats, captions, min_images=4) is None
    assert caption_retrieval(ToyText(), toy_tokenizer, feats, captions, max_images=2, min_images=2)["n_images"] == 2


@pytest.mark.parametrize("where", ["img", "txt"])
def test_nan_features_never_count_as_hits(where):
    """A diverged encoder (NaN features) scores the floor, never 100 % (issue 12, defect 4)."""
    g = torch.Generator().manual_seed(3)
    img = torch.randn(12, 8, generator=g)
    txt = img.repeat_interleave(2, dim=0)
    owner = torch.arange(12).repeat_interleave(2)
    if where == "img":
        img = torch.full_like(img, float("nan"))
    else:
        txt = torch.full_like(txt, float("nan"))
    r = multi_caption_recall(img, txt, owner, ks=(1, 5, 12, 24))
    assert all(r[f"{d}_R@{k}"] == 0.0 for d in ("i2t", "t2i") for k in (1, 5, 12, 24)), r
    assert r["i2t_medr"] == 25.0 and r["t2i_medr"] == 13.0  # past the last rank


def test_a_nan_caption_counts_against_every_query_and_is_never_found():
    """Caption 3 (of image 3, which has no other) is NaN: it ranks above the right caption for every image query,
    image 3 can only be found through it, and its own text query is a miss; the other text queries are exact."""
    g = torch.Generator().manual_seed(4)
    img = torch.randn(12, 8, generator=g)
    txt = img.clone()
    txt[3] = float("nan")
    r = multi_caption_recall(img, txt, torch.arange(12), ks=(1, 2, 12))
    assert r["i2t_R@1"] == 0.0 and r["i2t_R@2"] == pytest.approx(11 / 12) and r["i2t_R@12"] == pytest.approx(11 / 12)
    assert r["t2i_R@1"] == pytest.approx(11 / 12) and r["t2i_R@12"] == pytest.approx(11 / 12)


def test_an_image_is_found_through_its_finite_caption_when_another_is_nan():
    img = torch.eye(3)
    txt = torch.stack([torch.full((3,), float("nan")), img[0], img[1], img[2]])
    r = multi_caption_recall(img, txt, torch.tensor([0, 0, 1, 2]), ks=(1, 2))
    # i2t: image 0 is found through caption 1 (its NaN caption is its own, so it does not count against it);
    # images 1 and 2 have the NaN caption of image 0 ahead of their own -> rank 2
    assert r["i2t_R@1"] == pytest.approx(1 / 3) and r["i2t_R@2"] == 1.0
    assert r["t2i_R@1"] == pytest.approx(3 / 4)  # the NaN caption's query is a miss


@pytest.mark.parametrize("owner,msg", [
    ([0, 1], "owner must be"),            # 3 captions, 2 owners
    ([0, 1, 3], "owner must be"),          # index past the images
    ([0, -1, 1], "owner must be"),         # negative index
    ([0, 0, 1], "every image needs at least one caption"),  # image 2 (the last) has none
])
def test_owner_is_checked(owner, msg):
    img, txt = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match=f"^{msg}"):
        multi_caption_recall(img, txt[:len(owner)] if len(owner) == 3 else txt, torch.tensor(owner))
    with pytest.raises(ValueError, match="^owner must be"):
        multi_caption_recall(img, txt[:0], torch.zeros(0, dtype=torch.long))


def test_one_image_one_caption_is_found():
    r = multi_caption_recall(torch.ones(1, 3), torch.ones(1, 3), torch.tensor([0]), ks=(1,))
    assert r == {"i2t_R@1": 1.0, "i2t_medr": 1.0, "t2i_R@1": 1.0, "t2i_medr": 1.0, "i2t_chance_R@1": 1.0,
                 "t2i_chance_R@1": 1.0}


def test_chance_recall_by_hand():
    """Image -> text: 1 - C(M - c, k) / C(M, k) averaged over images; text -> image: k / N."""
    r = chance_recall(torch.tensor([1, 3]), ks=(1, 2))  # M = 4 captions, N = 2 images
    assert r["i2t_chance_R@1"] == pytest.approx(((1 - 3 / 4) + (1 - 1 / 4)) / 2)
    assert r["i2t_chance_R@2"] == pytest.approx(((1 - 3 / 6) + (1 - 0 / 6)) / 2)
    assert r["t2i_chance_R@1"] == 0.5 and r["t2i_chance_R@2"] == 1.0
    assert chance_recall(torch.tensor([5] * 247), ks=(10,))["i2t_chance_R@10"] == pytest.approx(0.0399, abs=1e-4)


def test_random_features_score_at_chance():
    """Random image and caption features: recall averaged over draws is the chance level (within 1 point)."""
    owner = torch.arange(600) % 120
    g = torch.Generator().manual_seed(0)
    runs = [multi_caption_recall(torch.randn(120, 8, generator=g), torch.randn(600, 8, generator=g), owner)
            for _ in range(40)]
    for key in ("i2t_R@10", "t2i_R@10", "i2t_R@1", "t2i_R@5"):
        way, k = key.split("_")
        mean = sum(r[key] for r in runs) / len(runs)
        assert mean == pytest.approx(runs[0][f"{way}_chance_{k}"], abs=0.01), key
