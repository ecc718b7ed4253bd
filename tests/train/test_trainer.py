"""End-to-end pretraining on the tiny synthetic data: outputs, failures, signals."""
from __future__ import annotations

import hashlib
import os
import signal

import pytest
import torch

import tvdim.train.trainer as trainer
from tvdim.config import load_config
from tvdim.errors import ConfigError, DataError, NonFiniteLossError
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


def _poison_after_step(monkeypatch, at_step, name):
    """After optimizer step ``at_step``, write NaN into the tensor ``name`` of the method's state dict."""
    real_build, real_opt = trainer.build_method, trainer.build_optimizer
    built = {}

    def build(*a, **k):
        built["m"] = real_build(*a, **k)
        return built["m"]

    def build_opt(*a, **k):
        opt, calls = real_opt(*a, **k), [0]

        def hook(o, args, kwargs):
            calls[0] += 1
            if calls[0] == at_step:
                with torch.no_grad():
                    built["m"].state_dict()[name].fill_(float("nan"))

        opt.register_step_post_hook(hook)
        return opt

    monkeypatch.setattr(trainer, "build_method", build)
    monkeypatch.setattr(trainer, "build_optimizer", build_opt)


@pytest.mark.parametrize("name", ["probes.shape.weight",  # the next loss is NaN
                                  "image_encoder.rkhs5.bn_out.running_var"])  # the loss stays finite
def test_nonfinite_weights_are_never_checkpointed(tmp_path, monkeypatch, name):
    _poison_after_step(monkeypatch, 2, name)
    out = tmp_path / "nanw"
    with pytest.raises(NonFiniteLossError, match=r"step 2.*last good checkpoint is kept: .*last\.pt"):
        trainer.pretrain(tiny_cfg("amdim", out, "train.steps=4", "train.ckpt_every=1"))
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_stop_reason_goes_to_train_log_and_metrics(tmp_path, monkeypatch):
    def hook(i, out):
        if i == 2:
            out.loss = out.loss * float("nan")
        return out

    _patch_forward(monkeypatch, hook)
    out = tmp_path / "why"
    with pytest.raises(NonFiniteLossError):
        trainer.pretrain(tiny_cfg("amdim", out, "train.steps=4", "train.log_every=1"))
    last = read_jsonl(out / "metrics.jsonl")[-1]
    assert last["stopped"] == "NonFiniteLossError" and "step 2" in last["reason"] and last["step"] == 1
    assert "loss became nan at step 2" in (out / "train.log").read_text()

    monkeypatch.setattr(trainer, "build_source", lambda *a, **k: [])
    with pytest.raises(DataError):
        trainer.pretrain(tiny_cfg("amdim", tmp_path / "empty", "train.steps=2"))
    last = read_jsonl(tmp_path / "empty" / "metrics.jsonl")[-1]
    assert last["stopped"] == "DataError" and "empty" in last["reason"]
    assert "empty" in (tmp_path / "empty" / "train.log").read_text()


def test_clean_run_writes_train_log_and_strict_json(tmp_path):
    import json

    res = trainer.pretrain(tiny_cfg("amdim", tmp_path / "a", "train.steps=2", "train.log_every=1"))
    text = (tmp_path / "a" / "train.log").read_text()
    assert "starting" in text and "step 2/2" in text and f"finished at step 2; checkpoint: {res.checkpoint}" in text
    for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in metrics.jsonl"))
    trainer.pretrain(tiny_cfg("amdim", tmp_path / "b", "train.steps=1"))
    assert str(tmp_path / "b") not in (tmp_path / "a" / "train.log").read_text()  # each run logs to its own file


def test_existing_run_folder_is_not_overwritten_silently(tmp_path):
    out = tmp_path / "run"
    trainer.pretrain(tiny_cfg("amdim", out, "train.steps=3", "train.log_every=1"))
    before = hashlib.sha256((out / "checkpoints" / "last.pt").read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match=r"already holds a run.*--resume latest.*--overwrite"):
        trainer.pretrain(tiny_cfg("amdim", out, "train.steps=2"))
    assert hashlib.sha256((out / "checkpoints" / "last.pt").read_bytes()).hexdigest() == before
    res = trainer.pretrain(tiny_cfg("amdim", out, "train.steps=2", "train.log_every=1"), overwrite=True)
    assert res.step == 2 and load_checkpoint(res.checkpoint)["step"] == 2
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss/total" in r] == [1, 2]
    assert "step 3/3" not in (out / "train.log").read_text()


@pytest.mark.parametrize("change,keys", [(["model.ndf=16"], ["model.ndf"]),
                                         (["train.method=tvdim"], ["train.method"]),
                                         (["loss.nce_reg=0.1", "train.batch_size=4"], ["loss.nce_reg",
                                                                                       "train.batch_size"])])
def test_resume_refuses_changed_method_or_model(tmp_path, change, keys):
    out = tmp_path / "r"
    trainer.pretrain(tiny_cfg("amdim", out, "train.steps=1"))
    before = (out / "config.json").read_text()
    with pytest.raises(ConfigError) as info:
        trainer.pretrain(load_config(overrides=TINY + ["train.method=amdim", f"train.out_dir={out}",
                                                       "train.steps=2", *change]), resume="latest")
    assert all(k in str(info.value) for k in keys) and "train.steps" not in str(info.value)
    assert (out / "config.json").read_text() == before
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 1


def test_resume_applies_and_logs_harmless_changes(tmp_path):
    out = tmp_path / "h"
    trainer.pretrain(tiny_cfg("amdim", out, "train.steps=1"))
    res = trainer.pretrain(tiny_cfg("amdim", out, "train.steps=3", "train.log_every=1", "eval.knn_k=5",
                                    "data.root=moved/"), resume="latest")
    assert res.step == 3
    state = load_checkpoint(res.checkpoint)
    assert state["config"]["train"]["log_every"] == 1 and state["config"]["data"]["root"] == "moved/"
    log_text = (out / "train.log").read_text()
    assert "train.steps changed from 1 to 3" in log_text and "data.root changed from '' to 'moved/'" in log_text
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss/total" in r] == [1, 2, 3]


def test_resume_drops_records_after_checkpoint_and_stale_temp_files(tmp_path):
    """A run killed after its step-2 checkpoint logged steps 3-4 (the last line cut) and left a .tmp behind."""
    import json

    out = tmp_path / "k"
    trainer.pretrain(tiny_cfg("amdim", out, "train.steps=2", "train.log_every=1"))
    with (out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 3, "loss/total": 1.0}) + "\n" + '{"step": 4, "loss/to')
    (out / "checkpoints" / "last.pt.tmp").write_bytes(b"PK\x03")
    trainer.pretrain(tiny_cfg("amdim", out, "train.steps=4", "train.log_every=1"), resume="latest")
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss/total" in r] == [1, 2, 3, 4]
    assert not (out / "checkpoints" / "last.pt.tmp").exists()
    assert "last.pt.tmp" in (out / "train.log").read_text()
