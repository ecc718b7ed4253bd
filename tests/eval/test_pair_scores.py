"""Caption-noise detector scores: hand-computed pair scores, AUROC and precision at the noise rate."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from tvdim.eval.pair_scores import auroc, detection_metrics, pair_scores, read_manifest, write_scores


def test_pair_scores_hand_computed():
    # unit vectors: image i and caption j; pair 2's caption points away from its image
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    s = pair_scores(img, txt, margin=0.2)
    # s = img @ txt.T = [[1,0,0],[0,1,1],[1,0,0]]; diag = [1, 1, 0]
    assert s["agreement"].tolist() == pytest.approx([1.0, 1.0, 0.0])
    # pair 0: i2t hinges vs captions 1, 2: [0.2-1+0]_+ = 0, 0; t2i (caption 0 vs images 1, 2): s=0 and 1 -> 0, 0.2
    # pair 1: i2t vs captions 0, 2: 0, [0.2-1+1]=0.2; t2i vs images 0, 2: 0, 0          -> (0.2) / 2
    # pair 2: i2t vs captions 0, 1: [0.2-0+1]=1.2, [0.2-0+0]=0.2; t2i vs images 0, 1: 0.2, 1.2 -> 2.8 / 2
    assert s["loss"].tolist() == pytest.approx([0.1, 0.1, 1.4], abs=1e-6)
    # rank: fraction of others scoring >= own: pair 2's image prefers caption 0 (1 >= 0) and caption 1 (0 >= 0)
    assert s["rank_i2t"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert s["rank_t2i"].tolist() == pytest.approx([0.5, 0.0, 1.0])
    assert s["clean_probability"][2] < s["clean_probability"][0]


def test_an_images_other_captions_are_not_negatives():
    """Pairs 0 and 1 are two captions of one image: neither is a negative (nor a competitor) of the other."""
    img = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    grouped = pair_scores(img, txt, margin=0.2, group=torch.tensor([0, 0, 1]))
    # pair 1 (s_11 = 0.6): its only negative is pair 2 -- i2t: image 0 vs caption 2: [0.2 - 0.6 + 0]_+ = 0;
    # t2i: caption 1 vs image 2: [0.2 - 0.6 + 0.8]_+ = 0.4  -> 0.4 / 1 negative; pairs 0 and 2 score 1 against 0
    # (or 0.8, pair 2 against caption 1: [0.2 - 1 + 0.8]_+ = 0)
    assert grouped["loss"].tolist() == pytest.approx([0.0, 0.4, 0.0], abs=1e-6)
    assert grouped["rank_i2t"].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert grouped["rank_t2i"].tolist() == pytest.approx([0.0, 1.0, 0.0])  # image 2 scores 0.8 >= 0.6 for caption 1
    alone = pair_scores(img, txt, margin=0.2)  # as separate images, caption 0 would beat pair 1's own caption
    assert alone["rank_i2t"][1] == pytest.approx(0.5) and alone["loss"][1] > grouped["loss"][1]


def test_separation_of_two_modes_and_of_one():
    from tvdim.eval.pair_scores import separation

    g = torch.Generator().manual_seed(0)
    two = torch.cat([torch.randn(300, generator=g) * 0.1, 1 + torch.randn(100, generator=g) * 0.1])
    assert separation(two) > 5 and separation(torch.randn(400, generator=g)) < 2


def test_pair_scores_chunks_give_the_same_result():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(37, 8, generator=g), torch.randn(37, 8, generator=g)
    a, b = pair_scores(img, txt, chunk=5), pair_scores(img, txt, chunk=1024)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_auroc_hand_computed_with_ties():
    score = torch.tensor([0.9, 0.8, 0.8, 0.1])
    pos = torch.tensor([True, False, True, False])
    # positive/negative pairs: (0.9>0.8)=1, (0.9>0.1)=1, (0.8=0.8)=0.5, (0.8>0.1)=1 -> 3.5 / 4
    assert auroc(score, pos) == pytest.approx(3.5 / 4)
    assert auroc(-score, pos) == pytest.approx(0.5 / 4)
    assert auroc(torch.ones(4), pos) == pytest.approx(0.5)
    assert auroc(score, torch.ones(4, dtype=torch.bool)) != auroc(score, torch.ones(4, dtype=torch.bool))  # NaN


def test_precision_at_the_true_noise_rate():
    score = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    noisy = torch.tensor([True, False, True, False, False])
    m = detection_metrics(score, noisy)
    assert m["n"] == 5 and m["n_noisy"] == 2
    assert m["precision_at_noise_rate"] == pytest.approx(0.5)  # top 2 = pairs 0, 1
    assert m["auroc"] == pytest.approx(5 / 6)  # (1 + 1 + 1) + (0 + 1 + 1) over 6


def test_read_manifest_keys_and_kind(tmp_path):
    p = tmp_path / "corrupted.json"
    p.write_text(json.dumps({"keys": ["a", 7], "key_kind": "row"}))
    assert read_manifest(p) == ({"a", "7"}, "row")
    p.write_text(json.dumps({"keys": []}))
    assert read_manifest(str(p)) == (set(), "key")  # the kind defaults to keys


@pytest.mark.parametrize("name", ["scores.jsonl", "scores.csv"])
def test_write_scores_formats_and_no_temporary_left(tmp_path, name):
    rows = [{"key": "b", "loss": 0.5, "caption": "a, \"quoted\" one"}, {"key": "a", "loss": 0.25, "caption": "x"}]
    out = tmp_path / name
    write_scores(rows, out)
    write_scores(rows, out)  # over an existing file
    text = out.read_text(encoding="utf-8")
    if name.endswith(".jsonl"):
        assert text == "".join(json.dumps(r) + "\n" for r in rows)
    else:
        assert list(csv.DictReader(text.splitlines())) == [{k: str(v) for k, v in r.items()} for r in rows]
        assert text.splitlines()[0] == "key,loss,caption"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    empty = tmp_path / "empty.csv"
    write_scores([], empty)
    assert empty.read_text().splitlines() == ["key"]
