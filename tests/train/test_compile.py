"""train.compile: torch.compile of the training step gives the eager losses; a compile failure falls back to eager
with one warning; errors of the step itself are never swallowed."""
from __future__ import annotations

import shutil

import pytest
import torch

import tvdim.train.trainer as trainer
from tvdim.config import load_config
from tvdim.errors import DataError
from tvdim.train.runlog import read_jsonl

# amdim needs no tokenizer; the smallest model the encoder allows keeps inductor's CPU compile short
SMALL = ["train.method=amdim", "model.ndf=4", "model.n_rkhs=16", "model.n_depth=1", "model.image_size=32",
         "train.batch_size=4", "data.synth_train=16", "data.synth_test=8", "train.progress=false",
         "train.device=cpu", "train.steps=2", "train.log_every=1", "optim.warmup_steps=0", "optim.lr=1e-3",
         "data.workers=0"]


def run(out, *extra):
    return trainer.pretrain(load_config(overrides=SMALL + [f"train.out_dir={out}", *extra]))


def losses(out):
    return [(r["step"], r["loss/total"]) for r in read_jsonl(out / "metrics.jsonl") if "loss/total" in r]


def loss_terms(out):
    return [{k: v for k, v in r.items() if k.startswith("loss/")} for r in read_jsonl(out / "metrics.jsonl")
            if "loss/total" in r]


@pytest.mark.slow
def test_compiled_step_gives_the_eager_losses(tmp_path):
    """Two real training steps with inductor on the CPU: the step-2 loss also checks the compiled backward (it is
    computed with the weights the step-1 gradients moved). The online probes are part of the step (they break the
    graph: data-dependent label masks). About 80-120 s with a cold inductor cache on a busy 2-core machine: gcc
    builds some 40 kernels."""
    if not (shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("no C compiler (gcc / cc): torch.compile's inductor backend cannot build CPU kernels")
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    run(tmp_path / "eager", "train.compile=off")
    res = run(tmp_path / "compiled", "train.compile=on")
    assert res.step == 2
    text = (tmp_path / "compiled" / "train.log").read_text()
    assert "torch.compile on" in text
    assert "torch.compile failed" not in text  # a silent eager fallback would make the comparison below trivial
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo really captured the step
    eager, compiled = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert [s for s, _ in eager] == [s for s, _ in compiled] == [1, 2]
    for step, (a, b) in enumerate(zip(loss_terms(tmp_path / "eager"), loss_terms(tmp_path / "compiled")), 1):
        assert set(a) == set(b) and "loss/nce_1t5" in a and "loss/probe/shape" in a
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), f"step {step} {k}: eager {a[k]}, compiled {b[k]}"
    assert eager[0][1] != eager[1][1]  # the weights moved between the steps (else step 2 proves nothing more)


def _fake_compile(monkeypatch, make_call):
    """Replace torch.compile as the trainer sees it: ``make_call(model)`` is what the "compiled" model runs."""
    made = []

    def fake(model, *a, **k):
        made.append(model)
        return make_call(model)

    monkeypatch.setattr(trainer.torch, "compile", fake)
    return made


def test_compile_failure_falls_back_to_eager_with_one_warning(tmp_path, monkeypatch):
    calls = []

    def make_call(model):
        def broken(batch):
            calls.append(1)
            raise RuntimeError("inductor: no working C compiler\nsecond line of the message")

        return broken

    made = _fake_compile(monkeypatch, make_call)
    res = run(tmp_path / "fb", "train.compile=on", "train.steps=3")
    assert res.step == 3 and not res.stopped_early and res.checkpoint.is_file()
    assert len(made) == 1 and len(calls) == 1  # tried once, at the first step; eager afterwards
    text = (tmp_path / "fb" / "train.log").read_text()
    warnings = [line for line in text.splitlines() if "torch.compile failed" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
    assert "RuntimeError" in warnings[0] and "no working C compiler" in warnings[0]
    assert "second line" not in text  # the first line of the reason only
    assert "step 3/3" in text
    # the failed first step is redone eagerly on the same batch: the same losses as a run that never compiled
    monkeypatch.undo()
    run(tmp_path / "off", "train.compile=off", "train.steps=3")
    assert losses(tmp_path / "fb") == losses(tmp_path / "off")


def test_compile_off_never_calls_torch_compile(tmp_path, monkeypatch):
    made = _fake_compile(monkeypatch, lambda model: model)
    run(tmp_path / "off", "train.compile=off", "train.steps=1")
    run(tmp_path / "auto", "train.compile=auto", "train.steps=1")  # auto: CUDA only
    assert made == []
    assert "torch.compile" not in (tmp_path / "auto" / "train.log").read_text()
    run(tmp_path / "on", "train.compile=on", "train.steps=1")
    assert len(made) == 1 and "torch.compile on" in (tmp_path / "on" / "train.log").read_text()


def test_tvdim_error_inside_the_compiled_step_is_not_swallowed(tmp_path, monkeypatch):
    def make_call(model):
        def fails(batch):
            raise DataError("a batch the method cannot use")

        return fails

    _fake_compile(monkeypatch, make_call)
    with pytest.raises(DataError, match="cannot use"):
        run(tmp_path / "err", "train.compile=on")
    text = (tmp_path / "err" / "train.log").read_text()
    assert "torch.compile failed" not in text and "a batch the method cannot use" in text


def test_failure_after_a_compiled_step_propagates(tmp_path, monkeypatch):
    """Only the first call is a compile attempt; a later failure is the step's own and is not hidden by eager."""
    def make_call(model):
        n = [0]

        def later(batch):
            n[0] += 1
            if n[0] == 2:
                raise RuntimeError("the model broke at step 2")
            return model(batch)

        return later

    _fake_compile(monkeypatch, make_call)
    with pytest.raises(RuntimeError, match="broke at step 2"):
        run(tmp_path / "late", "train.compile=on", "train.steps=3")
    assert "torch.compile failed" not in (tmp_path / "late" / "train.log").read_text()
