"""A run speaks early: the first step of a process is logged (not only every log_every steps), and an estimate of
the time to finish is written after three more steps."""
from __future__ import annotations

import json

from tvdim.config import load_config
from tvdim.train.trainer import _duration, pretrain

TINY = ["model.ndf=8", "model.n_rkhs=16", "model.n_depth=1", "train.batch_size=4", "data.synth_train=32",
        "data.synth_test=8", "train.progress=false", "train.device=cpu", "train.method=amdim", "train.log_every=10",
        "optim.warmup_steps=1"]


def steps_logged(out):
    return [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss/total" in r]


def test_first_step_and_an_estimate_are_logged_then_every_log_every(tmp_path):
    out = tmp_path / "run"
    pretrain(load_config(overrides=TINY + ["train.steps=12", f"train.out_dir={out}"]))
    assert steps_logged(out) == [1, 10, 12]
    log = (out / "train.log").read_text()
    assert "estimated time to finish:" in log and "for the remaining 8 steps" in log and "over steps 2-4" in log


def test_a_resumed_run_logs_its_own_first_step(tmp_path):
    out = tmp_path / "run"
    pretrain(load_config(overrides=TINY + ["train.steps=3", "train.ckpt_every=3", f"train.out_dir={out}"]))
    pretrain(load_config(overrides=TINY + ["train.steps=5", f"train.out_dir={out}"]), resume="latest")
    assert steps_logged(out) == [1, 3, 4, 5]


def test_duration_wording():
    assert [_duration(s) for s in (42, 89.4, 780, 9000)] == ["42 s", "89 s", "13 min", "2.5 h"]
