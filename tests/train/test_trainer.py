"""End-to-end pretraining on the tiny synthetic data: outputs, failures, signals."""
from __future__ import annotations

import hashlib
import os
import signal

import pytest
import torch

import tvdim.train.trainer as trainer
from tvdim.config import load_config
from tvdim.errors import DataError, NonFiniteLossError
from tvdim.train.checkpoint import load_checkpoint
from tvdim.train.runlog import read_jsonl

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "eval.linear_epochs=2", "eval.mlp_epochs=2", "train.device=cpu"]



def tiny_cfg(method, out, *extra):
    return load_config(overrides=TINY + [f"train.method={method}", f"train.out_dir={out}", *extra])


@pytest.mark.parametrize("method", ["amdim", "tvdim", "tvdim-nce", "clip", "supervised"])
def test_pretrain_every_method_writes_checkpoint_and_metrics(method, tmp_path):
    res = trainer.pretrain(tiny_cfg(method, tmp_path / method, "train.steps=2", "train.log_every=1"))
    assert res.step == 2 and not res.stopped_early
    ckpt = tmp_path / method / "checkpoints" / "last.pt"
    assert res.checkpoint == ckpt and ckpt.is_file()
    state = load_checkpoint(ckpt)
    assert state["step"] == 2 and state["method"] == method and state["samples_seen"] == 16
    assert set(state["tasks"]) == {"shape", "colour", "count"}
    assert (state["tokenizer"] is not None) == (method in ("tvdim", "tvdim-nce", "clip"))
    if state["tokenizer"] is not None:
        assert (tmp_path / method / "tokenizer.json").is_file()
    recs = [r for r in read_jsonl(tmp_path / method / "metrics.jsonl") if "loss/total" in r]
    assert [r["step"] for r in recs] == [1, 2]
    for r in recs:
        assert r["samples_per_s"] > 0
        assert all(v == v for k, v in r.items() if isinstance(v, float))  # no NaN
    keys = set(recs[-1])
    expect = {"amdim": "loss/nce_1t5", "tvdim": "loss/inter_rank", "tvdim-nce": "loss/inter_nce",
              "clip": "loss/inter_nce", "supervised": "loss/sup/shape"}[method]
    assert expect in keys and "loss/probe/shape" in keys and "probe_acc/shape" in keys
    assert (tmp_path / method / "config.json").is_file()


def test_random_method_saves_initial_encoder_without_training(tmp_path):
    res = trainer.pretrain(tiny_cfg("random", tmp_path / "r", "train.steps=5"))
    assert res.step == 0 and res.checkpoint.is_file()
    assert load_checkpoint(res.checkpoint)["step"] == 0
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def test_training_changes_the_encoder(tmp_path):
    """'random' saves the initial weights (same seed, same init); two steps of amdim move the encoder."""
    init = load_checkpoint(trainer.pretrain(tiny_cfg("random", tmp_path / "r0")).checkpoint)["model"]
    again = load_checkpoint(trainer.pretrain(tiny_cfg("random", tmp_path / "r1")).checkpoint)["model"]
    assert all(torch.equal(init[k], again[k]) for k in init)  # initialisation is seeded
    res = trainer.pretrain(tiny_cfg("amdim", tmp_path / "a", "train.steps=2", "optim.warmup_steps=0",
                                    "optim.lr=1e-3"))
    trained = load_checkpoint(res.checkpoint)["model"]
    assert set(init) == set(trained)
    changed = [k for k in init if init[k].dtype.is_floating_point and not torch.equal(init[k], trained[k])]
    assert any(k.startswith("image_encoder.") and k.endswith("weight") for k in changed)
    assert any(k.startswith("probes.") for k in changed)


def _patch_forward(monkeypatch, hook):
    """Wrap the built method's forward: ``hook(call_index, out)`` may alter the StepOutput."""
    real_build = trainer.build_method

    def build(*a, **k):
        method = real_build(*a, **k)
        forward, calls = method.forward, [0]

        def wrapped(batch):
            calls[0] += 1
            return hook(calls[0], forward(batch))

        method.forward = wrapped
        return method

    monkeypatch.setattr(trainer, "build_method", build)


def test_nan_loss_raises_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    saved = {}
    real_save = trainer.save_checkpoint

    def save(path, state):
        p = real_save(path, state)
        saved[state["step"]] = hashlib.sha256(p.read_bytes()).hexdigest()
        return p

    monkeypatch.setattr(trainer, "save_checkpoint", save)

    def hook(i, out):
        if i >= 4:
            out.loss = out.loss * float("nan")
        return out

    _patch_forward(monkeypatch, hook)
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as info:
        trainer.pretrain(tiny_cfg("amdim", out, "train.steps=6", "train.ckpt_every=2"))
    msg = str(info.value)
    assert "step 4" in msg and "last.pt" in msg
    ckpt = out / "checkpoints" / "last.pt"
    assert sorted(saved) == [2]
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == saved[2]
    assert load_checkpoint(ckpt)["step"] == 2


def test_nan_at_first_step_reports_no_checkpoint(tmp_path, monkeypatch):
    def hook(i, out):
        out.loss = out.loss + float("inf")
        return out

    _patch_forward(monkeypatch, hook)
    with pytest.raises(NonFiniteLossError, match="step 1.*none written yet"):
        trainer.pretrain(tiny_cfg("amdim", tmp_path / "inf", "train.steps=3"))
    assert not (tmp_path / "inf" / "checkpoints" / "last.pt").exists()


def test_sigterm_stops_early_with_resumable_checkpoint(tmp_path, monkeypatch):
    before = signal.getsignal(signal.SIGTERM)

    def hook(i, out):
        if i == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    _patch_forward(monkeypatch, hook)
    out = tmp_path / "sig"
    res = trainer.pretrain(tiny_cfg("amdim", out, "train.steps=5", "train.ckpt_every=100"))
    assert res.stopped_early and res.step == 2
    assert signal.getsignal(signal.SIGTERM) == before  # handler restored
    assert load_checkpoint(res.checkpoint)["step"] == 2
    monkeypatch.undo()
    res2 = trainer.pretrain(tiny_cfg("amdim", out, "train.steps=5"), resume="latest")
    assert res2.step == 5 and not res2.stopped_early
    state = load_checkpoint(res2.checkpoint)
    assert state["step"] == 5 and state["samples_seen"] == 40


def test_empty_dataset_is_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "build_source", lambda *a, **k: [])
    with pytest.raises(DataError, match="empty"):
        trainer.pretrain(tiny_cfg("amdim", tmp_path / "e", "train.steps=2"))


def test_resume_latest_without_checkpoint_starts_fresh(tmp_path):
    res = trainer.pretrain(tiny_cfg("amdim", tmp_path / "f", "train.steps=1"), resume="latest")
    assert res.step == 1


def test_resume_at_final_step_does_no_more_training(tmp_path):
    out = tmp_path / "done"
    trainer.pretrain(tiny_cfg("amdim", out, "train.steps=2"))
    before = load_checkpoint(out / "checkpoints" / "last.pt")["model"]
    res = trainer.pretrain(tiny_cfg("amdim", out, "train.steps=2"), resume="latest")
    assert res.step == 2
    after = load_checkpoint(res.checkpoint)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bf16_autocast_on_cpu_trains(tmp_path):
    """train.precision=bf16 runs the step under CPU autocast; losses stay finite and a checkpoint is written."""
    res = trainer.pretrain(tiny_cfg("tvdim", tmp_path, "train.steps=2", "train.precision=bf16", "train.log_every=1"))
    rec = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "loss/total" in r][-1]
    assert res.step == 2 and rec["loss/total"] == rec["loss/total"]  # not NaN
    assert load_checkpoint(res.checkpoint)["precision"] == "bf16"
