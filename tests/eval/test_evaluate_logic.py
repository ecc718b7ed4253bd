"""evaluate()'s bookkeeping on hand-made feature sets: which tasks are scored, what is passed to the probes, the
retrieval condition, the result fields and the files written. The features stand in for extract_features."""
from __future__ import annotations

import dataclasses
import json
import logging

import pytest
import torch

from tvdim.api import load_method
from tvdim.config import DataConfig, EvalConfig, load_config
from tvdim.errors import DataError
from tvdim.eval import evaluate as ev
from tvdim.eval import probes
from tvdim.eval.features import FeatureSet
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=16",
        "data.synth_test=8", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "train.device=cpu", "train.steps=1", "train.method=tvdim"]

RETRIEVAL_HEAD = "i2t R@1/5/10 (chance R@10) | t2i R@1/5/10 (chance R@10) | medr i2t / t2i"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    out = tmp_path_factory.mktemp("logic")
    return load_method(pretrain(load_config(overrides=TINY + [f"train.out_dir={out}"])).checkpoint)


def feature_set(labels, captions=None, n=12, seed=0, skipped=None):
    g = torch.Generator().manual_seed(seed)
    captions = captions or [""] * n
    return FeatureSet(torch.randn(n, 32, generator=g), {k: torch.tensor(v) for k, v in labels.items()},
                      captions, skipped or {"bad": seed}, [[c] if c.strip() else [] for c in captions])


def ecfg(**kw):
    """Only the probes this file is about: no few-shot, logistic or zero-shot probe."""
    return EvalConfig(**{"linear_epochs": 1, "mlp_epochs": 1, "few_shot": 0, "logreg_cs": (),
                         "zeroshot_templates": (), **kw})


@pytest.fixture
def fake_features(monkeypatch):
    """evaluate() gets ``sets[split]`` instead of extracting features; returns the dict to fill."""
    sets = {}
    monkeypatch.setattr(ev, "extract_features", lambda enc, src, *a, **k: sets[a[-1]])
    monkeypatch.setattr(ev, "eval_source", lambda data, split, size: split)
    return sets


N = -1  # unlabelled
TRAIN = {"a": [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2],
         "b": [N] * 12,                               # nothing labelled for the probes: skipped
         "c": [0] * 12,                               # only in the training set: skipped
         "d": [0, 0, N, 0, 0, N, 0, 0, N, 0, 0, N],   # one class seen in training (label 0): scored
         "e": [N, N, N, N, 1, N, N, N, N, N, N, N]}   # a single labelled training row: scored
TEST = {"a": [0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0],
        "b": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        "d": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        "e": [N, N, 0, N, N, N, N, N, N, N, N, N],   # a single labelled test row, label 0
        "f": [1] * 12}                               # only in the test set: skipped


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")  # the MLP of task e gets no batch
def test_tasks_scored_are_those_labelled_in_both_splits(loaded, fake_features):
    fake_features.update(eval_train=feature_set(TRAIN), test=feature_set(TEST, seed=1))
    res = ev.evaluate(loaded, DataConfig(), ecfg(knn_k=3))
    assert list(res["tasks"]) == ["a", "d", "e"]
    assert res["tasks"]["a"]["n_classes"] == 3 and res["tasks"]["d"]["n_classes"] == 2
    assert res["tasks"]["e"]["n_classes"] == 2
    assert res["tasks"]["e"]["knn"] == 0.0  # its one training row says 1, its one test row is 0


def test_no_common_task_is_a_data_error(loaded, fake_features):
    fake_features.update(eval_train=feature_set({"c": TRAIN["c"]}), test=feature_set({"f": TEST["f"]}))
    with pytest.raises(DataError, match=r"^no label task is present in both the probe training set and the test "
                                        r"set; "):
        ev.evaluate(loaded, DataConfig(), ecfg())


def test_probe_settings_reach_the_probes(loaded, fake_features, monkeypatch):
    fake_features.update(eval_train=feature_set({"a": TRAIN["a"]}), test=feature_set({"a": TEST["a"]}, seed=1))
    calls = []
    monkeypatch.setattr(probes, "train_probe", lambda *a: calls.append(a) or torch.nn.Linear(32, 3))
    monkeypatch.setattr(probes, "knn_accuracy", lambda *a: calls.append(a) or 0.5)
    settings = ecfg(linear_epochs=3, mlp_epochs=4, probe_batch=5, probe_lr=0.02, knn_k=7)
    for kw, seed in (({}, 0), ({"seed": 6}, 6)):
        calls.clear()
        ev.evaluate(loaded, DataConfig(), settings, **kw)
        (lin, mlp, knn) = calls
        assert lin[0] == "linear" and lin[3:] == (3, 3, 5, 0.02, seed)
        assert mlp[0] == "mlp" and mlp[3:] == (3, 4, 5, 0.02, seed)
        assert knn[4] == 7


def test_result_fields(loaded, fake_features):
    tr = feature_set({"a": TRAIN["a"]}, skipped={"bad": 2, "reasons": ["x"]})
    te = feature_set({"a": TEST["a"]}, n=12, seed=1, skipped={"bad": 0})
    fake_features.update(eval_train=tr, test=te)
    res = ev.evaluate(loaded, DataConfig(), ecfg())
    assert res["method"] == "tvdim" and res["checkpoint"] == str(loaded.path) and res["step"] == 1
    assert res["n_train"] == 12 and res["n_test"] == 12 and res["feature_dim"] == 32
    assert res["data_quality"] == {"eval_train": {"bad": 2, "reasons": ["x"]}, "test": {"bad": 0}}
    assert isinstance(res["seconds"], float) and 0.0 <= res["seconds"] < 600
    assert res["seconds"] == round(res["seconds"], 2)
    assert "retrieval" not in res  # no captions


@pytest.mark.parametrize("n_captioned,expected", [(9, False), (10, True)])
def test_retrieval_needs_ten_captioned_pairs(loaded, fake_features, n_captioned, expected):
    caps = [f"a red circle number {i}" if i < n_captioned else "  " for i in range(12)]
    fake_features.update(eval_train=feature_set({"a": TRAIN["a"]}),
                         test=feature_set({"a": TEST["a"]}, captions=caps, seed=1))
    res = ev.evaluate(loaded, DataConfig(), ecfg())
    assert ("retrieval" in res) is expected
    if expected:
        assert res["retrieval"]["n_images"] == 10 and res["retrieval"]["n_pairs"] == 10
    no_tokenizer = dataclasses.replace(loaded, tokenizer=None)
    assert "retrieval" not in ev.evaluate(no_tokenizer, DataConfig(), ecfg())


def test_write_results_files(tmp_path, caplog):
    res = {"method": "amdim", "tasks": {"a": {"linear": 0.5, "mlp": 0.25, "knn": 1.0}}, "seconds": 1.5}
    out = tmp_path / "deep" / "er" / "eval"
    with caplog.at_level(logging.INFO, logger="tvdim.eval"):
        ev.write_results(res, out)
        ev.write_results(res, out)  # into an existing folder again
    assert (out / "results.json").read_text() == json.dumps(res, indent=2)
    assert (out / "results.md").read_text() == ev.markdown_table({"amdim": res}) + "\n"
    assert caplog.messages == [f"wrote {out / 'results.json'}"] * 2


def test_markdown_table_without_tasks_or_retrieval():
    lines = ev.markdown_table({"x": {}, "y": {"tasks": {"a": {"knn": 0.5}}}}).splitlines()
    assert lines == [f"| method | a linear | a MLP | a kNN | {RETRIEVAL_HEAD} |", "|---|---|---|---|---|---|---|",
                     "| x | - | - | - | - | - | - |", "| y | - | - | 50.0 | - | - | - |"]


@pytest.mark.parametrize("labels,captions,has_text,want", [
    ({"a": [N, N]}, [[], []], True, "the test set has neither labels nor captions: nothing to evaluate (probes need "
                                     "labels, retrieval needs captions)"),
    ({"a": [0, N]}, [[], []], True, "no label task is present in both the probe training set and the test set; "
                                     "it has no captions for retrieval"),
    ({"a": [N, 1]}, [["x"], []], False, "no label task is present in both the probe training set and the test set; "
                                        "method 'amdim' has no text encoder for retrieval (use a tvdim, tvdim-nce, "
                                        "clip, slip or siglip checkpoint)"),
    ({}, [["x", "y"], []], True, "the test set has no labels; retrieval needs at least 10 captioned test images, "
                                  "found 1"),
])
def test_nothing_to_evaluate_says_why(labels, captions, has_text, want):
    te = FeatureSet(torch.zeros(2, 4), {k: torch.tensor(v) for k, v in labels.items()}, ["", ""], {}, captions)
    assert ev.nothing_to_evaluate("amdim", te, has_text) == want


def test_caption_retrieval_image_limits(loaded):
    from tvdim.eval.caption_retrieval import caption_retrieval

    enc, tok = loaded.method.text_encoder, loaded.tokenizer
    feats = torch.randn(1002, 32, generator=torch.Generator().manual_seed(0))
    caps = [[f"a red circle {i % 7}"] for i in range(1001)] + [[]]
    assert caption_retrieval(enc, tok, feats, caps)["n_images"] == 1000  # default: at most 1000 images
    one = caption_retrieval(enc, tok, feats[:1], caps[:1], min_images=0)  # never fewer than one image
    assert one["n_images"] == 1 and one["i2t_R@1"] == 1.0
    assert caption_retrieval(enc, tok, feats[-1:], caps[-1:], min_images=0) is None
