"""A schedule that makes no sense for the run length is named in a warning (train.log and the console)."""
from __future__ import annotations

import logging

from tvdim.config import load_config
from tvdim.train.schedule import lr_factor, schedule_warnings
from tvdim.train.trainer import pretrain


def test_warm_up_longer_than_the_run_says_the_peak():
    (msg,) = [w for w in schedule_warnings(250, 500, 0.8) if "warmup" in w]
    assert "optim.warmup_steps=500" in msg and "train.steps=250" in msg and "0.50x" in msg
    # the stated peak is the schedule's own (the last step's factor, before any decay)
    assert max(lr_factor(s, 250, 500, 1.0, 1.0) for s in range(250)) == 0.5


def test_sound_schedules_give_no_warning_and_borderline_ones_do():
    assert schedule_warnings(1000, 100, 0.8) == []
    assert schedule_warnings(1000, 500, 0.8) == []  # half the run: allowed
    assert "more than half the run" in schedule_warnings(1000, 501, 0.9)[0]
    assert any("starts before the warm-up ends" in w for w in schedule_warnings(1000, 400, 0.3))
    assert schedule_warnings(1000, 400, 0.3, decay_factor=1.0) == []  # no decay: nothing to collide with


def test_pretrain_logs_the_warning_into_train_log(tmp_path, caplog):
    cfg = load_config(overrides=["model.ndf=8", "model.n_rkhs=16", "model.n_depth=1", "train.batch_size=4",
                                 "train.steps=2", "data.synth_train=16", "data.synth_test=8", "train.progress=false",
                                 "train.device=cpu", "train.method=amdim", "optim.warmup_steps=500",
                                 f"train.out_dir={tmp_path / 'run'}"])
    with caplog.at_level(logging.WARNING, logger="tvdim.train"):
        pretrain(cfg)
    assert "optim.warmup_steps=500 is not shorter than the run" in (tmp_path / "run" / "train.log").read_text()
