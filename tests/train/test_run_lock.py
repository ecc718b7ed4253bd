"""One run folder, one writer: a second ``tvdim pretrain`` into the same --out is refused; stale locks are taken over."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import tvdim.train.trainer as trainer
from tvdim.cli import main
from tvdim.config import load_config
from tvdim.errors import DataError
from tvdim.train.checkpoint import load_checkpoint

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "train.progress=false", "train.device=cpu"]
LOCK = "run.lock"


def tiny_cfg(out, *extra):
    return load_config(overrides=TINY + ["train.method=amdim", f"train.out_dir={out}", *extra])


def test_second_pretrain_into_the_same_out_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "tvdim.cli", "pretrain", "--out", str(out), *TINY,
                              "train.method=amdim", "train.steps=100000", "train.ckpt_every=100000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (out / "train.log").is_file() and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read().decode()
        code = main(["pretrain", "--out", str(out), *TINY, "train.method=amdim", "train.steps=1", "--overwrite"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("tvdim: error:") and len(err.splitlines()) == 1
        assert str(first.pid) in err and str(out) in err
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGTERM)  # graceful stop: checkpoint, then the lock is released
        first.wait(120)
    assert not (out / LOCK).exists()
    last = out / "checkpoints" / "last.pt"  # none when the signal came before the first step
    stopped = load_checkpoint(last)["step"] if last.is_file() else 0
    res = trainer.pretrain(tiny_cfg(out, f"train.steps={stopped + 1}"), resume="latest")  # continue: the lock is free
    assert res.step == stopped + 1


def test_lock_held_by_a_live_process_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        with pytest.raises(Exception, match=f"pid {other.pid}"):
            trainer.pretrain(tiny_cfg(out, "train.steps=1"))
        assert json.loads((out / LOCK).read_text())["pid"] == other.pid  # not taken from its owner
        assert not (out / "checkpoints").exists()
    finally:
        other.kill()
        other.wait()


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_log_line(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    res = trainer.pretrain(tiny_cfg(out, "train.steps=1"))
    assert res.step == 1
    log = (out / "train.log").read_text()
    assert "stale" in log and str(dead.pid) in log
    assert not (out / LOCK).exists()  # released at the end


def test_lock_is_released_after_an_error(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(trainer, "build_source", lambda *a, **k: [])
    with pytest.raises(DataError):
        trainer.pretrain(tiny_cfg(out, "train.steps=2"))
    assert out.is_dir() and not (out / LOCK).exists()
    monkeypatch.undo()
    assert trainer.pretrain(tiny_cfg(out, "train.steps=1"), resume="latest").step == 1


def test_lock_file_names_pid_and_host_while_running(tmp_path, monkeypatch):
    seen = {}
    real = trainer._run

    def spy(*a, **k):
        seen.update(json.loads((tmp_path / "run" / LOCK).read_text()))
        return real(*a, **k)

    monkeypatch.setattr(trainer, "_run", spy)
    trainer.pretrain(tiny_cfg(tmp_path / "run", "train.steps=1"))
    assert seen["pid"] == os.getpid() and seen["host"] == socket.gethostname()
