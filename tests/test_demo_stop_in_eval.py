"""A stop signal during the demo's evaluation phase: exit status 1 and the command to continue (as in pretraining)."""
from __future__ import annotations

import subprocess
import sys

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "train.progress=false", "train.device=cpu", "train.steps=1", "eval.linear_epochs=1",
        "eval.mlp_epochs=1"]
SCRIPT = """
import os, signal, sys, time
import tvdim.demo as demo
from tvdim.cli import main

def evaluate(*a, **k):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    raise AssertionError("the signal did not stop the evaluation")

demo.evaluate = evaluate
sys.exit(main(sys.argv[1:]))
"""


def test_stop_signal_during_evaluation_exits_1_with_continue_command(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-c", SCRIPT, "demo", "--out", str(out), "--methods", "random", *TINY],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "stopped by a signal while evaluating random" in r.stderr
    assert f"tvdim demo --out {out} --resume --methods random" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (out / "results.json").exists() and not (out / "report.md").exists()
