"""Broken exports: truncated weights, a foreign config.json, a full disk while exporting."""
from __future__ import annotations

import errno
import json

import pytest

import tvdim
from tvdim.cli import main
from tvdim.config import load_config
from tvdim.errors import CheckpointError, TvdimError
from tvdim.hub import export_checkpoint
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "train.progress=false", "train.device=cpu", "train.steps=1", "train.method=amdim"]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    ckpt = pretrain(load_config(overrides=TINY + [f"train.out_dir={root / 'run'}"])).checkpoint
    return ckpt, export_checkpoint(ckpt, root / "ex")


def _copy(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_truncated_weights_are_checkpoint_error_naming_the_file(export, tmp_path, capsys):
    ex = _copy(export[1], tmp_path / "cut")
    w = ex / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        tvdim.from_pretrained(ex)
    (tmp_path / "imgs").mkdir()
    code = main(["embed", str(ex), str(tmp_path / "imgs"), "--out", str(tmp_path / "f.npy"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("tvdim: error:") and "model.safetensors" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("key,value", [("architecture", "resnet_nope"), ("method", "byol")])
def test_config_of_another_architecture_or_method_is_refused(export, tmp_path, key, value):
    ex = _copy(export[1], tmp_path / "other")
    conf = json.loads((ex / "config.json").read_text())
    if key == "architecture":
        conf["image"]["architecture"] = value
    else:
        conf["method"] = value
    (ex / "config.json").write_text(json.dumps(conf))
    with pytest.raises(CheckpointError, match=f"{key}.*{value}"):
        tvdim.from_pretrained(ex)


def test_full_disk_during_export_leaves_nothing_half_written(export, tmp_path, monkeypatch, capsys):
    import safetensors.torch

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_model", full)
    out = tmp_path / "ex"
    code = main(["export", str(export[0]), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no space left on" in err and str(tmp_path) in err
    assert not out.exists() or not any(out.iterdir())
    assert [p.name for p in tmp_path.iterdir() if p.name != "ex"] == []  # no temporary folder left behind
    with pytest.raises(TvdimError, match="no space left"):
        export_checkpoint(export[0], out)

    monkeypatch.undo()  # an --overwrite export that fails keeps the previous export whole
    prev = export_checkpoint(export[0], tmp_path / "keep")
    before = {p.name: p.read_bytes() for p in prev.iterdir()}
    monkeypatch.setattr(safetensors.torch, "save_model", full)
    with pytest.raises(TvdimError, match="no space left"):
        export_checkpoint(export[0], prev, overwrite=True)
    assert {p.name: p.read_bytes() for p in prev.iterdir()} == before
