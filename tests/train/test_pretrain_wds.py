"""Pretraining streams WebDataset shards (workers and no workers) and evaluation scores every test sample."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from tvdim.config import load_config
from tvdim.eval.evaluate import evaluate
from tvdim.train.checkpoint import load_checkpoint
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "text.dim=32", "text.layers=1", "text.heads=2",
        "text.vocab_size=120", "train.batch_size=8", "train.progress=false", "optim.warmup_steps=2",
        "eval.linear_epochs=2", "eval.mlp_epochs=1", "train.log_every=1"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def _shard(path: Path, start: int, n: int) -> None:
    with tarfile.open(path, "w") as tf:
        for i in range(start, start + n):
            name = list(COLOURS)[i % 3]
            buf = io.BytesIO()
            Image.new("RGB", (40, 40), COLOURS[name]).save(buf, "JPEG")
            for ext, data in (("jpg", buf.getvalue()), ("txt", f"a {name} square number {i}".encode()),
                              ("cls", str(i % 3).encode())):
                info = tarfile.TarInfo(f"s{i:05d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wds")
    for k in range(3):
        _shard(root / f"train-{k:06d}.tar", 20 * k, 20)
    _shard(root / "test-000000.tar", 100, 18)
    (root / "sizes.json").write_text(json.dumps({f"train-{k:06d}.tar": 20 for k in range(3)}))
    (root / "classes.json").write_text(json.dumps(list(COLOURS)))
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_pretrain_and_evaluate_on_shards(shards: Path, tmp_path: Path, workers: int) -> None:
    data = ["data.format=wds", f"data.path={shards}/train-{{000000..000002}}.tar",
            f"data.eval_test_path={shards}/test-000000.tar", f"data.workers={workers}", "data.shuffle_buffer=16"]
    cfg = load_config(overrides=TINY + data + ["train.method=tvdim", "train.steps=4", f"train.out_dir={tmp_path}"])
    res = pretrain(cfg)
    state = load_checkpoint(res.checkpoint)
    assert state["step"] == 4 and state["tasks"] == {"label": list(COLOURS)}  # names from classes.json
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "probe_acc/label" in lines[0]  # the online probe runs on the shard labels
    out = evaluate(res.checkpoint)
    assert out["n_train"] == 60 and out["n_test"] == 18  # every sample of both splits, once
    assert out["tasks"]["label"]["n_classes"] == 3
    assert out["retrieval"]["n_pairs"] == 18
