"""A full disk during a checkpoint write: a clear error naming the path, the stop record, the previous last.pt kept."""
from __future__ import annotations

import errno

import pytest
import torch

import tvdim.train.checkpoint as ckpt_mod
import tvdim.train.trainer as trainer
from tvdim.config import load_config
from tvdim.errors import CheckpointError
from tvdim.train.checkpoint import load_checkpoint, save_checkpoint
from tvdim.train.runlog import read_jsonl

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "train.progress=false", "train.device=cpu", "train.method=amdim"]
TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 1088 vs 1004"


@pytest.mark.parametrize("exc", [RuntimeError(TORCH_FULL), OSError(errno.ENOSPC, "No space left on device")])
def test_save_checkpoint_says_no_space_left(tmp_path, monkeypatch, exc):
    def full(obj, f, *a, **k):
        open(f, "wb").write(b"partial")
        raise exc

    monkeypatch.setattr(ckpt_mod.torch, "save", full)
    with pytest.raises(CheckpointError, match=f"no space left on {tmp_path / 'ck'}") as info:
        save_checkpoint(tmp_path / "ck" / "last.pt", {"x": 1})
    assert str(tmp_path / "ck" / "last.pt") in str(info.value)
    assert "unexpected pos" not in str(info.value).split("no space left")[0]
    assert list((tmp_path / "ck").iterdir()) == []


def test_full_disk_in_training_writes_stop_record_and_keeps_last_pt(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = load_config(overrides=TINY + [f"train.out_dir={out}", "train.steps=4", "train.ckpt_every=2",
                                        "train.log_every=1"])
    real = torch.save
    calls = {"n": 0}

    def full_second_time(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] >= 2:
            open(f, "wb").write(b"partial")
            raise RuntimeError(TORCH_FULL)
        return real(obj, f, *a, **k)

    monkeypatch.setattr(ckpt_mod.torch, "save", full_second_time)
    with pytest.raises(CheckpointError, match="no space left on"):
        trainer.pretrain(cfg)
    last = read_jsonl(out / "metrics.jsonl")[-1]
    assert last["stopped"] == "CheckpointError" and "no space left on" in last["reason"] and last["step"] == 4
    assert "no space left on" in (out / "train.log").read_text()
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 2  # the previous checkpoint is kept
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["last.pt"]
