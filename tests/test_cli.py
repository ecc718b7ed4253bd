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
    code = main(["pretrain", "--method", "byol", "--out", str(tmp_path / "x"), *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert "byol" in err
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


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _csv_pairs(folder: Path) -> list[str]:
    """8 captioned images without labels, as a CSV table; returns the data overrides."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(8):
        Image.new("RGB", (8, 8), (30 * i, 0, 0)).save(folder / f"{i}.png")
    table = folder / "pairs.csv"
    table.write_text("filepath,title\n" + "".join(f"{i}.png,a red square\n" for i in range(8)))
    return ["data.format=csv", f"data.path={table}", f"data.root={folder}"]


def test_supervised_without_labels_exit_2(tmp_path, capsys):
    code = main(["pretrain", "--method", "supervised", "--out", str(tmp_path / "s"), *TINY,
                 *_csv_pairs(tmp_path), "train.steps=1"])
    assert code == 2
    assert "supervised" in _err(capsys)


@pytest.mark.parametrize("override", ["train.ckpt_every=0", "train.log_every=0", "data.workers=-2", "model.ndf=-1", "model.size=huge",
                                      "text.dim=30", "optim.lr=nan", "optim.lr=inf", "optim.lr=-1",
                                      "data.max_bad_fraction=2"])
def test_invalid_values_exit_2_naming_the_key(tmp_path, capsys, override):
    code = main(["pretrain", "--method", "tvdim", "--out", str(tmp_path / "x"), *TINY, "train.steps=1", override])
    assert code == 2
    assert override.split("=")[0] in _err(capsys)
    assert not (tmp_path / "x").exists()


def test_zero_byte_checkpoint_exit_2(tmp_path, capsys):
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert main(["evaluate", str(ckpt)]) == 2
    assert "last.pt" in _err(capsys)
    assert main(["pretrain", "--method", "amdim", "--out", str(tmp_path / "run"), "--resume", "latest", *TINY,
                 "train.steps=1"]) == 2
    assert "last.pt" in _err(capsys)


def test_checkpoint_without_model_exit_2(run_dir, tmp_path, capsys):
    import torch

    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    del state["model"]
    torch.save(state, tmp_path / "nomodel.pt")
    assert main(["evaluate", str(tmp_path / "nomodel.pt")]) == 2
    err = _err(capsys)
    assert "nomodel.pt" in err and "model" in err


def test_out_that_is_a_file_exit_2(run_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "sub"):
        assert main(["pretrain", "--method", "amdim", "--out", str(out), *TINY, "train.steps=1"]) == 2
        assert "file" in _err(capsys)
        assert main(["evaluate", str(run_dir / "checkpoints" / "last.pt"), "--out", str(out)]) == 2
        assert "file" in _err(capsys)
        assert main(["demo", "--out", str(out), "--methods", "amdim", *TINY, "train.steps=1"]) == 2
        assert "file" in _err(capsys)


def test_full_disk_exit_2(tmp_path, capsys, monkeypatch):
    """A full disk while writing a checkpoint (torch.save raises RuntimeError) or a log (OSError ENOSPC)."""
    import errno

    import torch

    import tvdim.train.checkpoint as ckpt_mod

    def full(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"PK")  # a partial write, as a full disk leaves it
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(ckpt_mod.torch, "save", full)
    assert main(["pretrain", "--method", "amdim", "--out", str(tmp_path / "a"), *TINY, "train.steps=1"]) == 2
    err = _err(capsys)
    assert "last.pt" in err and "write" in err
    assert not list((tmp_path / "a" / "checkpoints").glob("*.tmp"))  # no half-written file left behind
    monkeypatch.setattr(ckpt_mod.torch, "save", torch.save)

    real_open = Path.open

    def no_space(self, mode="r", *a, **k):
        if "metrics.jsonl" in str(self) and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_open(self, mode, *a, **k)

    monkeypatch.setattr(Path, "open", no_space)
    assert main(["pretrain", "--method", "amdim", "--out", str(tmp_path / "b"), *TINY, "train.steps=1"]) == 2
    err = _err(capsys)
    assert "No space left on device" in err and "metrics.jsonl" in err


def test_resume_uses_the_saved_config_and_refuses_other_method_or_model(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["pretrain", "--method", "amdim", "--out", out, *TINY, "train.steps=1"]) == 0
    capsys.readouterr()
    for change in (["--method", "tvdim"], ["model.ndf=16"]):
        assert main(["pretrain", "--out", out, "--resume", "latest", "train.steps=2", *change]) == 2
        err = _err(capsys)
        assert ("train.method" if "--method" in change else "model.ndf") in err and "--overwrite" in err
    assert load_checkpoint(Path(out) / "checkpoints" / "last.pt")["step"] == 1
    # no TINY overrides: the saved config is the base, only train.steps changes
    assert main(["pretrain", "--out", out, "--resume", "latest", "train.steps=2"]) == 0
    state = load_checkpoint(Path(out) / "checkpoints" / "last.pt")
    assert state["step"] == 2 and state["config"]["model"]["ndf"] == 8 and state["method"] == "amdim"


def test_resume_with_a_missing_data_path_exit_2(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["pretrain", "--method", "amdim", "--out", out, *TINY, *_csv_pairs(tmp_path / "d"),
                 "train.steps=1"]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--out", out, "--resume", "latest", "train.steps=2",
                 f"data.path={tmp_path / 'moved.csv'}"]) == 2
    assert "moved.csv" in _err(capsys)


def test_existing_run_needs_resume_or_overwrite(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["pretrain", "--method", "amdim", "--out", out, *TINY, "train.steps=2"]) == 0
    assert main(["pretrain", "--method", "amdim", "--out", out, *TINY, "train.steps=1"]) == 2
    assert "--overwrite" in _err(capsys)
    assert load_checkpoint(Path(out) / "checkpoints" / "last.pt")["step"] == 2
    assert main(["pretrain", "--method", "amdim", "--out", out, "--overwrite", *TINY, "train.steps=1"]) == 0
    assert load_checkpoint(Path(out) / "checkpoints" / "last.pt")["step"] == 1


def test_evaluate_refuses_nonfinite_weights(run_dir, tmp_path, capsys):
    import torch

    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = state["model"][key].clone().fill_(float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    assert main(["evaluate", str(tmp_path / "nan.pt")]) == 2
    err = _err(capsys)
    assert "nan.pt" in err and "NaN" in err and key in err


def test_demo_stopped_by_a_signal_reports_nothing_then_resumes(tmp_path, capsys, monkeypatch):
    import os
    import signal

    import tvdim.train.trainer as trainer

    real_build = trainer.build_method

    def build(cfg, *a, **k):
        method = real_build(cfg, *a, **k)
        if cfg.train.method == "tvdim":
            forward, calls = method.forward, [0]

            def wrapped(batch):
                calls[0] += 1
                if calls[0] == 2:
                    os.kill(os.getpid(), signal.SIGTERM)
                return forward(batch)

            method.forward = wrapped
        return method

    monkeypatch.setattr(trainer, "build_method", build)
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--methods", "amdim,tvdim", *TINY, "train.steps=3", "text.heads=2",
            "eval.probe_batch=64"]
    assert main(args) == 1
    cap = capsys.readouterr()
    assert "| tvdim |" not in cap.out and "| amdim |" not in cap.out
    assert "step 2 of 3" in cap.err and "--resume" in cap.err and "Traceback" not in cap.err
    assert not (out / "results.json").exists() and not (out / "report.md").exists()
    assert load_checkpoint(out / "runs" / "tvdim" / "checkpoints" / "last.pt")["step"] == 2
    monkeypatch.undo()
    amdim_before = load_checkpoint(out / "runs" / "amdim" / "checkpoints" / "last.pt")["model"]
    assert main(args + ["--resume"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res) == {"amdim", "tvdim"} and all(r["step"] == 3 for r in res.values())
    amdim_after = load_checkpoint(out / "runs" / "amdim" / "checkpoints" / "last.pt")["model"]
    assert all(v.equal(amdim_before[k]) for k, v in amdim_after.items())  # the finished run was kept, not redone
