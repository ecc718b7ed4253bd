"""Guards from the sampled mutation run of issue 18 (tvdim.train): the run lock in a folder not made yet, what the
refusal to reuse a run folder names, and which values the run log mirrors to TensorBoard."""
from __future__ import annotations

import json

import pytest

from tvdim.errors import ConfigError
from tvdim.train.rundir import RunLock, prepare_run_dir
from tvdim.train.runlog import RunLogger


def test_the_lock_makes_a_nested_out_folder(tmp_path):
    lock = RunLock(tmp_path / "a" / "b" / "run")
    lock.acquire()
    try:
        assert json.loads(lock.path.read_text())["pid"] > 0
    finally:
        lock.release()
    assert not lock.path.exists()


@pytest.mark.parametrize("files, named", [(["checkpoints/last.pt", "metrics.jsonl"], "checkpoints/last.pt"),
                                          (["metrics.jsonl"], "metrics.jsonl")])
def test_a_folder_holding_a_run_is_refused_naming_what_it_holds(tmp_path, files, named):
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    with pytest.raises(ConfigError, match=rf"already holds a run \({named}\)"):
        prepare_run_dir(tmp_path, None, resume_requested=False, overwrite=False)


def test_only_numbers_go_to_tensorboard_not_the_step_flags_or_text(tmp_path):
    class Board:
        def __init__(self):
            self.calls = []

        def add_scalar(self, *args):
            self.calls.append(args)

    logger = RunLogger(tmp_path, tensorboard=False)
    logger.tb = board = Board()
    logger.write({"step": 3, "loss": 0.5, "seen": 12, "stopped": True, "checkpoint": "c.pt"}, 3)
    assert board.calls == [("loss", 0.5, 3), ("seen", 12, 3)]
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["stopped"] is True
