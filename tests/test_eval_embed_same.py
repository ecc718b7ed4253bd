"""One evaluation transform: evaluate, embed and the export give the same features for the same JPEG files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import tvdim
import tvdim.eval.evaluate as ev
from tvdim.config import DataConfig, load_config
from tvdim.embed import embed_to_file
from tvdim.hub import export_checkpoint
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "train.progress=false", "train.device=cpu", "train.steps=1", "train.method=amdim",
        "eval.linear_epochs=1", "eval.mlp_epochs=1", "eval.few_shot=0", "eval.logreg_cs=[]"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("same")
    ckpt = pretrain(load_config(overrides=TINY + [f"train.out_dir={root / 'run'}"])).checkpoint
    folder = root / "jpegs"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(4):  # 100x80 > the 32 px model size: JPEG draft decoding would change the pixels
            arr = rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)
            arr[:40] = arr[:40] // 2 + (64 if cls == "a" else 0)
            Image.fromarray(arr).save(folder / cls / f"{i}.jpg", quality=90)
    return ckpt, export_checkpoint(ckpt, root / "ex"), folder


def test_evaluate_embed_and_export_features_are_equal(setup, tmp_path, monkeypatch):
    ckpt, ex, folder = setup
    got = {}
    real = ev.extract_features

    def spy(*a, **k):
        fs = real(*a, **k)
        got[a[-1] if isinstance(a[-1], str) else k.get("name")] = fs
        return fs

    monkeypatch.setattr(ev, "extract_features", spy)
    data = DataConfig(format="imagefolder", path=str(folder), eval_test_path=str(folder), workers=0)
    ev.evaluate(ckpt, data=data)
    feats_eval = got["test"].feats

    files = sorted(p for p in folder.rglob("*.jpg"))
    res = embed_to_file(ex, str(folder), tmp_path / "f.npy", progress=False)
    keys = (tmp_path / "f.keys.txt").read_text().split()
    assert keys == [p.relative_to(folder).as_posix() for p in files] and res["n"] == 8
    feats_embed = torch.from_numpy(np.load(tmp_path / "f.npy"))

    model = tvdim.from_pretrained(ex)
    feats_export = model.encode_images([Image.open(p) for p in files])

    assert torch.allclose(feats_eval, feats_embed, atol=1e-5), (feats_eval - feats_embed).abs().max()
    assert torch.allclose(feats_eval, feats_export, atol=1e-5), (feats_eval - feats_export).abs().max()
