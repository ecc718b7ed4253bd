"""Pretraining on data that yields nothing usable stops with a reason, a stop signal is honoured while waiting for
data, and image-only methods keep samples whose captions are empty.

The stream tests run ``tvdim pretrain`` in a subprocess with a timeout, so a regression fails instead of hanging.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from PIL import Image

import tvdim
from tvdim.config import load_config
from tvdim.train.runlog import read_jsonl
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=4", "train.steps=2",
        "train.progress=false", "train.device=cpu", "optim.warmup_steps=1"]
GUARD_S = 180  # generous: only a hang reaches it


def _tvdim(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(tvdim.__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tvdim.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"tvdim did not stop within {GUARD_S} s (hang)") from None
    return proc.returncode, out, err


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (200, 40, 40)).save(buf, "JPEG")
    return buf.getvalue()


def _shard(path: Path, n: int, image: bytes) -> Path:
    with tarfile.open(path, "w") as tf:
        for i in range(n):
            for ext, data in (("jpg", image), ("txt", f"a red square {i}".encode())):
                info = tarfile.TarInfo(f"s{i:04d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def test_csv_given_as_shards_stops_with_the_reason(tmp_path):
    (tmp_path / "pairs.csv").write_text("filepath,title\na.jpg,a caption\n")
    code, _, err = _finish(_tvdim("pretrain", "--method", "amdim", "--out", str(tmp_path / "run"), *TINY,
                                  "data.format=wds", f"data.path={tmp_path / 'pairs.csv'}"))
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("tvdim: error:") and "pairs.csv" in line and "not a tar archive" in line


def test_shards_of_zero_byte_images_stop_with_the_reason(tmp_path):
    _shard(tmp_path / "z-000000.tar", 12, b"")
    for workers in (0, 1):
        code, _, err = _finish(_tvdim("pretrain", "--method", "amdim", "--out", str(tmp_path / f"run{workers}"),
                                      *TINY, "data.format=wds", f"data.path={tmp_path / 'z-000000.tar'}",
                                      f"data.workers={workers}"))
        assert code == 2, err
        line = err.strip().splitlines()[-1]
        assert line.startswith("tvdim: error:") and "zero-byte image" in line and "max_bad_fraction" in line
        assert "Traceback" not in err


def test_stop_signal_is_honoured_while_waiting_for_data(tmp_path):
    started = tmp_path / "reading"
    url = f"pipe:touch {started}; exec sleep {GUARD_S + 60}"  # a shard whose data does not come in time
    proc = _tvdim("pretrain", "--method", "amdim", "--out", str(tmp_path / "run"), *TINY, "data.format=wds",
                  f"data.path={url}")
    deadline = time.monotonic() + GUARD_S
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started.exists(), proc.communicate()
    proc.send_signal(signal.SIGTERM)
    code, out, err = _finish(proc)
    assert code == 0, err
    assert "stopped at step 0" in out and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert any(r.get("stopped") == "signal" for r in read_jsonl(tmp_path / "run" / "metrics.jsonl"))


def test_image_only_method_keeps_samples_with_empty_captions(tmp_path):
    rows = ["filepath,title"]
    for i in range(8):
        Image.new("RGB", (24, 24), (30 * i, 40, 40)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{'' if i % 2 else f'caption {i}'}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    cfg = load_config(overrides=TINY + ["train.method=amdim", f"train.out_dir={tmp_path / 'run'}",
                                        "data.format=csv", f"data.path={tmp_path / 't.csv'}"])
    pretrain(cfg)
    quality = [r["data_quality"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "data_quality" in r]
    assert quality[-1]["bad"] == 0 and quality[-1]["seen"] == 8, json.dumps(quality)
