"""tvdim evaluate on tiny trained checkpoints."""
from __future__ import annotations

import json

import pytest
import torch

from tvdim.config import load_config
from tvdim.eval.evaluate import evaluate, markdown_table
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "eval.linear_epochs=2", "eval.mlp_epochs=2", "train.device=cpu", "train.steps=2"]

RETRIEVAL_HEAD = "i2t R@1/5/10 (chance R@10) | t2i R@1/5/10 (chance R@10) | medr i2t / t2i"



@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_runs")
    return {m: pretrain(load_config(overrides=TINY + [f"train.method={m}", f"train.out_dir={root / m}"])).checkpoint
            for m in ("amdim", "tvdim")}


@pytest.mark.parametrize("method", ["amdim", "tvdim"])
def test_evaluate_results_and_files(method, ckpts, tmp_path):
    out = tmp_path / "eval"
    res = evaluate(ckpts[method], out_dir=out)
    assert res["method"] == method and res["step"] == 2
    assert res["n_train"] == 64 and res["n_test"] == 32 and res["feature_dim"] == 32
    assert set(res["tasks"]) == {"shape", "colour", "count"}
    for task, row in res["tasks"].items():
        assert set(row) >= {"n_classes", "linear", "mlp", "knn"}
        for k in ("linear", "mlp", "knn"):
            assert 0.0 <= row[k] <= 1.0
            # scored on the whole test split: a multiple of 1/32
            assert abs(row[k] * 32 - round(row[k] * 32)) < 1e-6
    assert res["tasks"]["shape"]["n_classes"] <= 6 and res["tasks"]["count"]["n_classes"] <= 3
    if method == "tvdim":
        ret = res["retrieval"]
        assert ret["n_pairs"] == 32
        for d in ("i2t", "t2i"):
            assert 0 <= ret[f"{d}_R@1"] <= ret[f"{d}_R@5"] <= ret[f"{d}_R@10"] <= 1
    else:
        assert "retrieval" not in res
    saved = json.loads((out / "results.json").read_text())
    assert saved["tasks"] == res["tasks"]
    md = (out / "results.md").read_text()
    assert md.startswith("| method |") and f"| {method} |" in md


def test_evaluate_is_deterministic(ckpts):
    a = evaluate(ckpts["amdim"], seed=1)
    b = evaluate(ckpts["amdim"], seed=1)
    for task in a["tasks"]:
        assert a["tasks"][task]["linear"] == b["tasks"][task]["linear"]
        assert a["tasks"][task]["mlp"] == b["tasks"][task]["mlp"]
        assert a["tasks"][task]["knn"] == b["tasks"][task]["knn"]


def test_extract_features_leaves_bn_running_stats(ckpts):
    from tvdim.api import load_method
    from tvdim.data.sources import build_source
    from tvdim.eval.features import extract_features

    loaded = load_method(ckpts["amdim"])
    enc = loaded.method.image_encoder
    enc.train()
    bns = [m for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in bns]
    fs = extract_features(enc, build_source(loaded.config.data, "test", 32), 32, batch_size=10)
    assert len(fs) == 32 and fs.feats.shape == (32, 32) and len(fs.captions) == 32
    assert set(fs.labels) == {"shape", "colour", "count"}
    for m, (mean, var) in zip(bns, stats):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)


def test_markdown_table_rows():
    rows = {"a": {"tasks": {"shape": {"linear": 0.5, "mlp": 0.25, "knn": 1.0}}},
            "b": {"tasks": {}, "retrieval": {"i2t_R@1": 0.1, "t2i_R@1": 0.2, "i2t_R@5": 0.3, "t2i_R@5": 0.4,
                                            "i2t_R@10": 0.5, "t2i_R@10": 0.6, "i2t_chance_R@10": 0.04,
                                            "t2i_chance_R@10": 0.05, "i2t_medr": 7.0, "t2i_medr": 12.0}}}
    lines = markdown_table(rows).splitlines()
    assert lines[0] == f"| method | shape linear | shape MLP | shape kNN | {RETRIEVAL_HEAD} |"
    assert lines[2] == "| a | 50.0 | 25.0 | 100.0 | - | - | - |"
    assert lines[3] == "| b | - | - | - | 10.0 / 30.0 / 50.0 (4.0) | 20.0 / 40.0 / 60.0 (5.0) | 7 / 12 |"
