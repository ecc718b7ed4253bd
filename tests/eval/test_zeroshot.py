"""Zero-shot classification: class names -> prompts -> text embeddings (template mean) -> nearest class."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tvdim.config import DataConfig
from tvdim.errors import DataError
from tvdim.eval.zeroshot import class_embeddings, class_names, readable, zeroshot_predict, zeroshot_scores

VOCAB = ["circle", "square", "triangle", "star", "a", "photo", "of", "an", "aerial"]


class BagOfWords(torch.nn.Module):
    """Toy text encoder: the sentence feature counts the vocabulary words of the caption."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids, mask):
        return type("Out", (), {"sentence": (F.one_hot(ids, len(VOCAB)) * mask.unsqueeze(-1)).sum(1).float()})()


def tokenizer(texts):
    words = [[VOCAB.index(w) for w in t.replace(".", "").split()] for t in texts]
    n = max(len(w) for w in words)
    ids = torch.tensor([w + [0] * (n - len(w)) for w in words])
    mask = torch.tensor([[1] * len(w) + [0] * (n - len(w)) for w in words])
    return ids, mask


def images(labels):
    """Image features pointing at their class word's dimension, plus a little shared 'photo' direction."""
    x = F.one_hot(torch.tensor(labels), len(VOCAB)).float()
    x[:, VOCAB.index("photo")] = 0.3
    return x


def test_readable_names():
    assert readable("StorageTanks") == "storage tanks"
    assert readable("storage_tanks") == "storage tanks"
    assert readable("baseball-field") == "baseball field"
    assert readable("playfields") == "playfields"
    assert readable("Airport") == "airport"


def test_class_vectors_average_normalised_template_embeddings():
    names, templates = ["circle", "star"], ["{}", "a photo of a {}."]
    w = class_embeddings(BagOfWords(), tokenizer, names, templates)
    assert w.shape == (2, len(VOCAB))
    for c, name in enumerate(names):
        e = torch.zeros(2, len(VOCAB))
        e[0, VOCAB.index(name)] = 1
        e[1, VOCAB.index(name)] = 1
        e[1, VOCAB.index("a")] = 2
        e[1, VOCAB.index("photo")] = e[1, VOCAB.index("of")] = 1
        ref = F.normalize(F.normalize(e, dim=1).mean(0), dim=0)
        assert torch.allclose(w[c], ref, atol=1e-6)


def test_label_i_is_names_i():
    y = [0, 1, 2, 3, 2, 1]
    names = ["circle", "square", "triangle", "star"]
    x = images(y)
    s = zeroshot_scores(BagOfWords(), tokenizer, x, torch.tensor(y), names, ["a photo of a {}."])
    assert s == {"accuracy": 1.0, "balanced_accuracy": 1.0}
    perm = [2, 0, 3, 1]  # the class list in another order: predictions index into that list
    w = class_embeddings(BagOfWords(), tokenizer, [names[i] for i in perm], ["{}"])
    pred = zeroshot_predict(x, w)
    assert [perm[p] for p in pred.tolist()] == y
    s = zeroshot_scores(BagOfWords(), tokenizer, x, torch.tensor(y), [names[i] for i in perm], ["{}"])
    assert s["accuracy"] == 0.0  # no fixed point in perm: every image is now called by a wrong name


def test_unlabelled_rows_are_not_scored():
    x = images([0, 1, 2])
    s = zeroshot_scores(BagOfWords(), tokenizer, x, torch.tensor([0, -1, 1]), ["circle", "square", "triangle"],
                        ["{}"])
    assert s["accuracy"] == 0.5  # row 2 (a triangle labelled 1) is wrong, row 1 is skipped


def test_class_names_from_sources_and_files(tmp_path):
    class Src:
        tasks = {"shape": ["circle", "square"]}

    class Folder:
        classes = ["cat", "dog"]

    cfg = DataConfig(format="synthetic")
    assert class_names(Src(), cfg, "test") == {"shape": ["circle", "square"]}
    assert class_names(Folder(), DataConfig(format="imagefolder"), "test") == {"label": ["cat", "dog"]}
    assert class_names(object(), DataConfig(format="jsonl", path=str(tmp_path / "t.jsonl")), "eval_train") == {}
    # WebDataset: classes.json beside the split's own shards, not beside the training shards
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    (tmp_path / "train" / "classes.json").write_text(json.dumps(["wrong"]))
    (tmp_path / "test" / "classes.json").write_text(json.dumps(["Airport", "BareLand"]))
    wds = DataConfig(format="wds", path=str(tmp_path / "train" / "a-{000000..000001}.tar"),
                     eval_test_path=str(tmp_path / "test" / "b-{000000..000001}.tar"))
    assert class_names(object(), wds, "test") == {"label": ["Airport", "BareLand"]}
    assert class_names(object(), wds, "eval_train") == {"label": ["wrong"]}
    (tmp_path / "test" / "classes.json").write_text(json.dumps({"Airport": 0}))
    with pytest.raises(DataError, match="JSON list of class names"):
        class_names(object(), wds, "test")
