"""metrics.jsonl is strict JSON (NaN / infinity become null); train.log handlers come and go with each run."""
from __future__ import annotations

import json
import logging

import pytest

from tvdim.train.runlog import RunLogger, close_logging, read_jsonl, setup_logging


def test_nonfinite_numbers_are_written_as_null(tmp_path):
    logger = RunLogger(tmp_path, tensorboard=False)
    logger.write({"step": 3, "lr": float("nan"), "loss/total": float("inf"), "x": [1.0, float("-inf")],
                  "bad_samples": 0, "ok": True}, 3)
    line = (tmp_path / "metrics.jsonl").read_text().strip()
    rec = json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in metrics.jsonl"))
    assert rec == {"step": 3, "lr": None, "loss/total": None, "x": [1.0, None], "bad_samples": 0, "ok": True}
    assert read_jsonl(tmp_path / "metrics.jsonl") == [rec]


def test_train_log_handler_is_removed_after_the_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    handler = setup_logging(a)
    logging.getLogger("tvdim.train").info("first run")
    logging.getLogger("tvdim.steps").info("step 1/1")
    close_logging(handler)
    close_logging(setup_logging(b))
    logging.getLogger("tvdim.train").info("after both")
    text = (a / "train.log").read_text()
    assert "first run" in text and "step 1/1" in text and "after both" not in text
