"""Test classes with no probe-training example: a warning in the log and in results.json, naming them."""
from __future__ import annotations

import logging

import torch

import tvdim.eval.evaluate as ev
from tvdim.config import load_config
from tvdim.eval.features import FeatureSet
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "train.progress=false", "train.device=cpu", "train.method=random",
        "eval.linear_epochs=1", "eval.mlp_epochs=1", "eval.few_shot=0"]


def _fs(labels):
    n = len(labels)
    return FeatureSet(torch.randn(n, 32), {"shape": torch.tensor(labels)}, [""] * n, {}, [[] for _ in range(n)])


def test_test_classes_without_training_examples_are_warned(tmp_path, monkeypatch, caplog):
    ckpt = pretrain(load_config(overrides=TINY + [f"train.out_dir={tmp_path / 'r'}"])).checkpoint
    sets = {"test": _fs([0, 1, 2, 3, 0, 1, 2, 3, 3, 3]), "eval_train": _fs([0, 1, 0, 1, 0, 1, 0, 1])}
    monkeypatch.setattr(ev, "extract_features", lambda enc, src, size, *a: sets[a[-1]])
    with caplog.at_level(logging.WARNING, logger="tvdim.eval"):
        res = ev.evaluate(ckpt, out_dir=tmp_path / "eval")
    row = res["tasks"]["shape"]
    assert row["test_classes_without_training_examples"] == [2, 3]
    assert row["n_test_unseen"] == 6
    assert any("shape" in w and "2, 3" in w for w in res["warnings"])
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "no probe-training example" in text and "shape" in text and "2, 3" in text


def test_no_warning_when_every_test_class_is_trained(tmp_path, monkeypatch):
    ckpt = pretrain(load_config(overrides=TINY + [f"train.out_dir={tmp_path / 'r'}"])).checkpoint
    sets = {"test": _fs([0, 1, 0, 1]), "eval_train": _fs([0, 1, 0, 1, 1])}
    monkeypatch.setattr(ev, "extract_features", lambda enc, src, size, *a: sets[a[-1]])
    res = ev.evaluate(ckpt)
    assert "test_classes_without_training_examples" not in res["tasks"]["shape"] and not res.get("warnings")
