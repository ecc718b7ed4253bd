"""Probes and k-NN learn from the probe-training split only and are scored on the test split only.

The two splits are built so that any leak shows: the same two kinds of image (reddish, bluish) carry opposite
labels in the training and the test folders. Trained on the training split, every probe (linear, MLP, k-NN,
few-shot, logistic) must get the test split wrong; a probe trained (or a k-NN gallery built) on the test split,
or scored on the training split, would be right.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tvdim.config import DataConfig, EvalConfig, load_config
from tvdim.eval.evaluate import evaluate
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=16",
        "data.synth_test=8", "train.progress=false", "train.device=cpu", "train.method=random"]
COLOURS = {"red": (200, 40, 40), "blue": (40, 40, 200)}


def write_split(root, labels_to_colour, n_per, seed):
    rng = np.random.default_rng(seed)
    for label, colour in labels_to_colour.items():
        (root / label).mkdir(parents=True)
        for i in range(n_per):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    write_split(root / "train", {"a": COLOURS["red"], "b": COLOURS["blue"]}, 8, seed=0)
    write_split(root / "test", {"a": COLOURS["blue"], "b": COLOURS["red"]}, 6, seed=1)  # labels flipped
    write_split(root / "test_same", {"a": COLOURS["red"], "b": COLOURS["blue"]}, 6, seed=2)  # labelled as train
    ckpt = pretrain(load_config(overrides=TINY + [f"train.out_dir={root / 'run'}"])).checkpoint
    data = DataConfig(format="imagefolder", path=str(root / "train"), eval_test_path=str(root / "test"))
    return ckpt, data


def test_probes_learn_from_the_training_split_and_score_the_test_split(flipped):
    ckpt, data = flipped
    ecfg = EvalConfig(linear_epochs=40, mlp_epochs=40, probe_batch=8, probe_lr=1e-2, knn_k=3, few_shot=4,
                      few_shot_draws=2, few_shot_epochs=60, logreg_cs=(0.1, 1.0))
    res = evaluate(ckpt, data, ecfg)
    assert res["n_train"] == 16 and res["n_test"] == 12
    row = res["tasks"]["label"]
    scores = {k: v for k, v in row.items() if k not in ("n_classes", "logreg_C")}
    assert {"linear", "mlp", "knn", "linear_4shot", "logreg", "logreg_balanced"} <= set(scores), row
    assert all(v <= 0.25 for v in scores.values()), row
    # the same protocol on a test folder labelled like the training one scores high: the features separate the
    # two colours, so the low scores above come from the flipped labels alone
    same = DataConfig(format="imagefolder", path=data.path, eval_test_path=data.eval_test_path + "_same")
    row = evaluate(ckpt, same, ecfg)["tasks"]["label"]
    assert all(row[k] >= 0.75 for k in scores), row
