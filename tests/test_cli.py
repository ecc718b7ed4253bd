"""The tvdim command line, called in-process through tvdim.cli.main (returns the exit code)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tvdim.cli import main
from tvdim.train.checkpoint import load_checkpoint

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "eval.linear_epochs=2", "eval.mlp_epochs=2", "train.device=cpu"]



@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "tv"
    code = main(["pretrain", "--method", "tvdim", "--out", str(out), *TINY, "train.steps=2"])
    assert code == 0
    return out


def test_pretrain_writes_checkpoint(run_dir, capsys):
    ckpt = run_dir / "checkpoints" / "last.pt"
    assert ckpt.is_file()
    state = load_checkpoint(ckpt)
    assert state["method"] == "tvdim" and state["step"] == 2
    assert state["config"]["model"]["ndf"] == 8  # overrides reached the run


def test_pretrain_prints_result(tmp_path, capsys):
    assert main(["pretrain", "--method", "amdim", "--out", str(tmp_path / "a"), *TINY, "train.steps=1"]) == 0
    out = capsys.readouterr().out
    assert "finished at step 1" in out and "last.pt" in out


def test_unknown_method_exit_2_lists_methods(tmp_path, capsys):
    code = main(["pretrain", "--method", "simclr", "--out", str(tmp_path / "x"), *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert "simclr" in err
    for m in ("amdim", "tvdim", "tvdim-nce", "clip", "supervised"):
        assert m in err
    assert not (tmp_path / "x").exists()


def test_unknown_key_exit_2(tmp_path, capsys):
    code = main(["pretrain", "--out", str(tmp_path / "x"), "train.stepz=3"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train.stepz" in err and "Traceback" not in err


def test_evaluate_writes_results(run_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    code = main(["evaluate", "--out", str(out), str(run_dir / "checkpoints" / "last.pt"), "eval.knn_k=3"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["method"] == "tvdim" and set(res["tasks"]) == {"shape", "colour", "count"}
    assert "retrieval" in res
    assert (out / "results.md").is_file()
    assert "| tvdim |" in capsys.readouterr().out


def test_evaluate_overrides_after_options(run_dir, tmp_path):
    out = tmp_path / "ev2"
    code = main(["evaluate", str(run_dir / "checkpoints" / "last.pt"), "--out", str(out), "eval.knn_k=3"])
    assert code == 0 and (out / "results.json").is_file()


def test_evaluate_unreadable_checkpoint_exit_2(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00garbage")
    assert main(["evaluate", str(bad)]) == 2
    assert "broken.pt" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "absent.pt")]) == 2
    assert "absent.pt" in capsys.readouterr().err


def test_evaluate_bad_override_exit_2(run_dir, capsys):
    assert main(["evaluate", str(run_dir / "checkpoints" / "last.pt"), "eval.nope=1"]) == 2
    assert "eval.nope" in capsys.readouterr().err


def test_evaluate_missing_config_file_exit_2(run_dir, tmp_path, capsys):
    code = main(["evaluate", str(run_dir / "checkpoints" / "last.pt"), "--config", str(tmp_path / "nope.yaml")])
    assert code == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_dataset_smaller_than_batch_exit_2(tmp_path, capsys):
    code = main(["pretrain", "--method", "amdim", "--out", str(tmp_path / "s"), *TINY, "data.synth_train=4",
                 "train.steps=1"])
    assert code == 2
    assert "batch" in capsys.readouterr().err


def test_config_prints_yaml(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  steps: 11\n")
    assert main(["config", "--config", str(p), "loss.margin=0.3", "optim.betas=[0.9,0.99]"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["train"]["steps"] == 11 and data["loss"]["margin"] == 0.3
    assert data["optim"]["betas"] == [0.9, 0.99]
    assert set(data) == {"data", "model", "text", "loss", "optim", "train", "eval"}
    assert main(["config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["method"] == "tvdim"
    assert main(["config", "loss.hinge=foo"]) == 2
    assert "sum, max, logistic" in capsys.readouterr().err


def test_demo_two_methods(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--methods", "amdim,tvdim", *TINY, "train.steps=3",
                 "text.heads=2", "eval.probe_batch=64"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res) == {"amdim", "tvdim"}
    assert "retrieval" in res["tvdim"] and "retrieval" not in res["amdim"]
    assert all(r["step"] == 3 for r in res.values())
    report = (out / "report.md").read_text()
    assert "| amdim |" in report and "| tvdim |" in report
    for png in ("accuracy.png", "curves.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and f"({png})" in report
    assert json.loads((out / "config.json").read_text())["model"]["ndf"] == 8


def test_missing_subcommand_is_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_console_script_help():
    exe = shutil.which("tvdim") or shutil.which("tvdim", path=str(Path(sys.executable).parent))
    assert exe is not None, "the `tvdim` console script is not installed"
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for sub in ("pretrain", "evaluate", "demo", "config"):
        assert sub in proc.stdout
