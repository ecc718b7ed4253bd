"""model.size: a run with the default (auto) size on a CPU trains the tiny preset, says so in train.log, and stores
the resolved sizes, so the checkpoint loads as trained anywhere; a resumed auto run keeps its checkpoint's sizes."""
from __future__ import annotations

import json

from tvdim.config import SIZES, load_config
from tvdim.loading import load_method
from tvdim.train.trainer import pretrain

RUN = ["data.synth_train=32", "train.method=amdim", "train.progress=false", "train.device=cpu"]


def test_default_size_on_a_cpu_is_tiny_and_stored_resolved(tmp_path):
    res = pretrain(load_config(overrides=RUN + ["train.steps=1", "train.batch_size=8", f"train.out_dir={tmp_path}"]))
    log = (tmp_path / "train.log").read_text()
    assert "model size: tiny (ndf 32, n_rkhs 256, n_depth 1), auto on a CPU" in log
    saved = json.loads((tmp_path / "config.json").read_text())["model"]
    assert (saved["size"], saved["ndf"], saved["n_rkhs"], saved["n_depth"]) == ("tiny", *SIZES["tiny"])
    enc = load_method(res.checkpoint).method.image_encoder
    assert enc.n_rkhs == 256
    # resumed with the default config again (size auto), the run keeps its sizes
    again = pretrain(load_config(overrides=RUN + ["train.steps=2", "train.batch_size=8", f"train.out_dir={tmp_path}"]),
                     resume="latest")
    assert again.step == 2 and "kept from the checkpoint being resumed" in (tmp_path / "train.log").read_text()


def test_a_set_size_is_trained(tmp_path):
    pretrain(load_config(overrides=RUN + ["train.steps=1", "train.batch_size=8", "model.size=small",
                                          f"train.out_dir={tmp_path}"]))
    saved = json.loads((tmp_path / "config.json").read_text())["model"]
    assert (saved["ndf"], saved["n_rkhs"], saved["n_depth"]) == SIZES["small"]


def test_default_batch_on_a_cpu_is_64_and_a_resume_keeps_the_runs_batch(tmp_path):
    from tvdim.config import BATCH, resolve_batch

    assert BATCH == {"gpu": 200, "cpu": 64} and load_config().train.batch_size == 0
    assert resolve_batch(load_config(), gpu=True)[0].train.batch_size == 200
    pretrain(load_config(overrides=RUN + ["data.synth_train=80", "model.size=tiny", "train.steps=1",
                                          f"train.out_dir={tmp_path}"]))
    saved = json.loads((tmp_path / "config.json").read_text())["train"]
    assert saved["batch_size"] == 64 and "batch: 64 per process, auto on a CPU" in (tmp_path / "train.log").read_text()
    kept, note = resolve_batch(load_config(), gpu=True, saved=64)  # resumed on a GPU: the run's batch
    assert kept.train.batch_size == 64 and "resumed" in note
