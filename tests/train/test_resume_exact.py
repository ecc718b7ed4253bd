"""Resume exactness: 6 uninterrupted steps == 3 steps + resume to 6 (same data, augmentations, RNG)."""
from __future__ import annotations

import pytest
import torch

import tvdim.train.trainer as trainer
from tvdim.config import load_config
from tvdim.models.tokenizer import CaptionTokenizer
from tvdim.train.checkpoint import load_checkpoint
from tvdim.train.schedule import lr_factor

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "train.device=cpu", "optim.warmup_steps=2", "optim.lr=1e-3"]



@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    """One fixed tokenizer for both runs (tokenizer training itself is not deterministic, see
    tests/models/test_caption_tokenizer.py)."""
    from tvdim.data.sources import caption_corpus

    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    CaptionTokenizer.train(caption_corpus(load_config(overrides=["data.synth_train=64"]).data), 200, 32).save(path)
    return path


def cfg(method, out, steps, tok, *extra):
    # decay_factor=1: the step decay depends on train.steps, which differs between the 3-step and the 6-step run
    return load_config(overrides=TINY + [f"train.method={method}", f"train.out_dir={out}", f"train.steps={steps}",
                                         "train.ckpt_every=3", "optim.decay_factor=1.0",
                                         f"text.tokenizer_path={tok}", *extra])


def run_pair(method, tmp_path, tok, *extra):
    a = trainer.pretrain(cfg(method, tmp_path / "a", 6, tok, *extra))
    trainer.pretrain(cfg(method, tmp_path / "b", 3, tok, *extra))
    b = trainer.pretrain(cfg(method, tmp_path / "b", 6, tok, *extra), resume="latest")
    assert a.step == b.step == 6
    sa, sb = load_checkpoint(a.checkpoint), load_checkpoint(b.checkpoint)
    assert sa["samples_seen"] == sb["samples_seen"] == 48
    return sa, sb


def assert_same_model(sa, sb):
    ma, mb = sa["model"], sb["model"]
    assert set(ma) == set(mb)
    bad = [k for k in ma if not torch.allclose(ma[k].float(), mb[k].float(), atol=1e-6, rtol=0)]
    assert not bad, f"{len(bad)} tensors differ, e.g. {bad[:3]}"


def test_resume_exact_when_step_uses_no_global_rng(tmp_path, tokenizer_file):
    """clip with text dropout 0 draws nothing from the global RNG: sampler order, augmentations, optimizer and
    scheduler state must make the resumed run identical."""
    sa, sb = run_pair("clip", tmp_path, tokenizer_file, "text.dropout=0.0")
    assert_same_model(sa, sb)
    for ga, gb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert torch.allclose(ga["exp_avg"], gb["exp_avg"], atol=1e-6)


@pytest.mark.parametrize("method, extra", [("amdim", []), ("tvdim", []), ("simclr", []), ("slip", []),
                                           ("siglip", []), ("slip", ["model.backbone=resnet10t"])])
def test_resume_exact(method, extra, tmp_path, tokenizer_file):
    sa, sb = run_pair(method, tmp_path, tokenizer_file, *extra)
    assert_same_model(sa, sb)


def _record_lrs(monkeypatch, sink):
    """Record the learning rate each optimizer step actually uses."""
    real = trainer.build_optimizer

    def build(*a, **k):
        opt = real(*a, **k)
        opt.register_step_pre_hook(lambda o, args, kwargs: sink.append(o.param_groups[0]["lr"]))
        return opt

    monkeypatch.setattr(trainer, "build_optimizer", build)


def test_resume_with_same_total_uses_same_lrs(tmp_path, monkeypatch):
    """Interrupted and resumed with the SAME train.steps: the learning rates follow the same schedule."""
    lrs = []
    _record_lrs(monkeypatch, lrs)
    out = tmp_path / "same"
    base = TINY + ["train.method=amdim", f"train.out_dir={out}", "train.steps=5", "train.ckpt_every=2",
                   "optim.decay_at=0.5"]
    real_forward_build = trainer.build_method
    calls = [0]

    def build(*a, **k):
        m = real_forward_build(*a, **k)
        fwd = m.forward

        def wrapped(batch):
            calls[0] += 1
            if calls[0] == 2:
                import os
                import signal
                os.kill(os.getpid(), signal.SIGTERM)
            return fwd(batch)

        m.forward = wrapped
        return m

    monkeypatch.setattr(trainer, "build_method", build)
    res = trainer.pretrain(load_config(overrides=base))
    assert res.stopped_early and res.step == 2
    trainer.pretrain(load_config(overrides=base), resume="latest")
    assert lrs == pytest.approx([1e-3 * lr_factor(s, 5, 2, 0.5, 0.2) for s in range(5)])


def test_resume_with_more_steps_follows_new_schedule(tmp_path, monkeypatch):
    lrs = []
    _record_lrs(monkeypatch, lrs)
    out = tmp_path / "ext"
    base = TINY + ["train.method=amdim", f"train.out_dir={out}", "train.ckpt_every=3"]
    trainer.pretrain(load_config(overrides=base + ["train.steps=3"]))
    del lrs[:]
    trainer.pretrain(load_config(overrides=base + ["train.steps=6"]), resume="latest")
    # steps 3, 4, 5 of a 6-step run: decay (x0.2) only from step 0.8 * 6 = 4.8, i.e. step 5
    assert lrs == pytest.approx([1e-3 * lr_factor(s, 6, 2, 0.8, 0.2) for s in range(3, 6)])


@pytest.mark.parametrize("robust", ["gmm", "small-loss", "storey"])
def test_resume_exact_with_robust_text_term(robust, tmp_path, tokenizer_file):
    """The per-pair loss memory and step count of loss.robust travel in the checkpoint: weights switch on at step 4
    (32 remembered losses), after the resume at step 3, so a memory that did not resume changes the result."""
    extra = (f"loss.robust={robust}", "loss.robust_warmup=1", "loss.robust_memory=64")
    sa, sb = run_pair("tvdim", tmp_path, tokenizer_file, *extra)
    assert int(sa["model"]["pair_weights.filled"]) == int(sb["model"]["pair_weights.filled"]) == 48
    if robust == "storey":  # the rank p-values' memory resumes too
        assert int(sa["model"]["pair_weights.pfilled"]) == int(sb["model"]["pair_weights.pfilled"]) == 48
    assert_same_model(sa, sb)


def test_resume_exact_with_views_drawn_on_the_device(tmp_path, tokenizer_file, monkeypatch):
    """data.augment=device: the views come from a generator seeded by (seed, step), so the resumed run draws the
    same ones; a seed that ignored the step (or restarted at 0 on resume) would change the result."""
    from tvdim.data import device_aug

    seeds = []
    real = device_aug.DeviceViews.__call__
    monkeypatch.setattr(device_aug.DeviceViews, "__call__", lambda self, x, seed: seeds.append(seed) or real(self, x, seed))
    sa, sb = run_pair("tvdim", tmp_path, tokenizer_file, "data.augment=device")
    assert_same_model(sa, sb)
    assert len(seeds) == 12 and seeds[:6] == seeds[6:] and len(set(seeds[:6])) == 6  # a, then b's 3 + 3
