"""model.size: a run with the default (auto) size on a CPU trains the tiny preset, says so in train.log, and stores
the resolved sizes, so the checkpoint loads as trained anywhere; a resumed auto run keeps its checkpoint's sizes."""
from __future__ import annotations

import json

from tvdim.config import SIZES, load_config
from tvdim.loading import load_method
from tvdim.train.trainer import pretrain

RUN = ["data.synth_train=32", "train.batch_size=8", "train.method=amdim", "train.progress=false", "train.device=cpu"]


def test_default_size_on_a_cpu_is_tiny_and_stored_resolved(tmp_path):
    res = pretrain(load_config(overrides=RUN + ["train.steps=1", f"train.out_dir={tmp_path}"]))
    log = (tmp_path / "train.log").read_text()
    assert "model size: tiny (ndf 32, n_rkhs 256, n_depth 1), auto on a CPU" in log
    saved = json.loads((tmp_path / "config.json").read_text())["model"]
    assert (saved["size"], saved["ndf"], saved["n_rkhs"], saved["n_depth"]) == ("tiny", *SIZES["tiny"])
    enc = load_method(res.checkpoint).method.image_encoder
    assert enc.n_rkhs == 256
    # resumed with the default config again (size auto), the run keeps its sizes
    again = pretrain(load_config(overrides=RUN + ["train.steps=2", f"train.out_dir={tmp_path}"]), resume="latest")
    assert again.step == 2 and "kept from the checkpoint being resumed" in (tmp_path / "train.log").read_text()


def test_a_set_size_is_trained(tmp_path):
    pretrain(load_config(overrides=RUN + ["train.steps=1", "model.size=small", f"train.out_dir={tmp_path}"]))
    saved = json.loads((tmp_path / "config.json").read_text())["model"]
    assert (saved["ndf"], saved["n_rkhs"], saved["n_depth"]) == SIZES["small"]
