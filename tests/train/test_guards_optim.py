"""The optimiser settings reach the training loop: Adam's weight decay, the online probes' learning rate, the
text tower's gradient clipping, and a changed ``optim.*`` key refused on resume."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tvdim.train.trainer as trainer
from tvdim.cli import main
from tvdim.config import load_config, to_plain
from tvdim.errors import ConfigError
from tvdim.methods import build_method
from tvdim.train.checkpoint import load_checkpoint
from tvdim.train.rundir import resume_changes

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "train.device=cpu", "train.compile=off"]
WD, LR, PROBE_LR = 0.03, 4e-4, 0.0123  # none of them a default (Adam's weight decay defaults to 0)


def tiny_cfg(method: str, out: Path, *extra: str):
    return load_config(overrides=TINY + [f"train.method={method}", f"train.out_dir={out}", *extra])


def _spy_pretrain(monkeypatch, cfg):
    """Run ``pretrain(cfg)``; returns the built method and the optimiser's param groups as built (before the
    scheduler scales the learning rates), plus ``after_step``: text/image grads seen after each optimizer step."""
    seen: dict = {"after_step": []}
    real_build, real_opt, real_step = trainer.build_method, trainer.build_optimizer, trainer.optimizer_step

    def build(*a, **k):
        seen["method"] = real_build(*a, **k)
        return seen["method"]

    def build_opt(method, cfg_, device):
        opt = real_opt(method, cfg_, device)
        seen["groups"] = [{k: v for k, v in g.items() if k != "params"} | {"ids": {id(p) for p in g["params"]}}
                          for g in opt.param_groups]
        return opt

    def step(*a, **k):
        real_step(*a, **k)
        m = seen["method"]
        text = [p.grad for p in m.text_encoder.parameters() if p.grad is not None] if m.text_encoder else []
        seen["after_step"].append(text)

    monkeypatch.setattr(trainer, "build_method", build)
    monkeypatch.setattr(trainer, "build_optimizer", build_opt)
    monkeypatch.setattr(trainer, "optimizer_step", step)
    trainer.pretrain(cfg)
    return seen


def _group_of(groups, params):
    ids = {id(p) for p in params}
    owners = [g for g in groups if ids & g["ids"]]
    assert len(owners) == 1 and ids <= owners[0]["ids"], "the parameters are split over several groups"
    return owners[0]


def test_pretrain_optimizer_carries_weight_decay_and_probe_lr(tmp_path, monkeypatch):
    cfg = tiny_cfg("tvdim", tmp_path / "r", "train.steps=1", f"optim.weight_decay={WD}", f"optim.lr={LR}",
                   f"optim.probe_lr={PROBE_LR}")
    seen = _spy_pretrain(monkeypatch, cfg)
    method, groups = seen["method"], seen["groups"]
    assert len(method.probes) > 0  # the synthetic data has label tasks, so the online probes are on
    assert all(g["weight_decay"] == pytest.approx(WD) for g in groups)
    assert _group_of(groups, method.probes.parameters())["lr"] == pytest.approx(PROBE_LR)
    assert _group_of(groups, method.encoder_parameters())["lr"] == pytest.approx(LR)
    assert _group_of(groups, method.text_encoder.parameters())["lr"] == pytest.approx(LR)


def test_build_optimizer_groups_and_decay_shows_in_a_step(tmp_path):
    """With zero gradients only the weight decay moves the weights (Adam: grad + wd * w)."""
    cfg = tiny_cfg("amdim", tmp_path, f"optim.weight_decay={WD}", f"optim.lr={LR}", f"optim.probe_lr={PROBE_LR}")
    method = build_method(cfg, {"shape": 3})
    opt = trainer.build_optimizer(method, cfg, torch.device("cpu"))
    probe_ids = {id(p) for p in method.probes.parameters()}
    lrs = {pid: g["lr"] for g in opt.param_groups for pid in map(id, g["params"])}
    assert [lrs[i] for i in probe_ids] == pytest.approx([PROBE_LR] * len(probe_ids))
    enc = method.encoder_parameters()
    assert [lrs[id(p)] for p in enc] == pytest.approx([LR] * len(enc))
    assert all(g["weight_decay"] == pytest.approx(WD) for g in opt.param_groups)

    w = method.probes["shape"].weight
    before = w.detach().clone()
    for p in method.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    moved = (w.detach() - before).abs()
    assert bool((moved[before != 0] > 0).all()), "a zero-gradient Adam step left the weights: no weight decay"
    # the decay pulls towards zero, by about the probe lr per step (Adam's normalised step)
    assert bool((w.detach().abs() < before.abs())[before.abs() > PROBE_LR].all())
    assert float(moved.max()) == pytest.approx(PROBE_LR, rel=0.05)


CLIP = 1e-6  # far below the gradient norm of an untrained text tower


def test_text_tower_gradients_are_clipped_in_pretrain(tmp_path, monkeypatch):
    seen = _spy_pretrain(monkeypatch, tiny_cfg("tvdim", tmp_path / "c", "train.steps=2",
                                               f"optim.text_grad_clip={CLIP}"))
    assert len(seen["after_step"]) == 2
    for grads in seen["after_step"]:
        assert grads, "the text tower got no gradients"
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        assert 0 < norm <= CLIP * (1 + 1e-3), f"text tower gradient norm {norm} > optim.text_grad_clip={CLIP}"


def test_text_grad_clip_off_leaves_gradients(tmp_path, monkeypatch):
    """The same run with clipping off has text gradients far above CLIP (so the test above measures clipping)."""
    seen = _spy_pretrain(monkeypatch, tiny_cfg("tvdim", tmp_path / "n", "train.steps=1", "optim.text_grad_clip=0"))
    grads = seen["after_step"][0]
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    assert norm > 1000 * CLIP


def test_optimizer_step_clips_only_to_the_given_norm():
    torch.manual_seed(0)
    text, image = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    opt = torch.optim.Adam(list(text.parameters()) + list(image.parameters()), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    x = torch.randn(8, 4)
    loss = 100 * (text(x).pow(2).sum() + image(x).pow(2).sum())
    trainer.optimizer_step(loss, opt, scaler, list(text.parameters()), 0.5)
    norm = torch.stack([p.grad.norm() for p in text.parameters()]).norm()
    assert float(norm) == pytest.approx(0.5, rel=1e-4)
    assert float(torch.stack([p.grad.norm() for p in image.parameters()]).norm()) > 0.5


@pytest.mark.parametrize("key,value", [("optim.lr", 1e-3), ("optim.probe_lr", 0.01), ("optim.weight_decay", 0.1),
                                       ("optim.betas", [0.9, 0.99]), ("optim.text_grad_clip", 0.5),
                                       ("optim.warmup_steps", 7)])
def test_resume_refuses_a_changed_optimiser_key(tmp_path, key, value):
    saved = to_plain(tiny_cfg("tvdim", tmp_path))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resume_changes(saved, tiny_cfg("tvdim", tmp_path, f"{key}={value}"), tmp_path / "last.pt")


def test_cli_resume_with_changed_lr_is_an_error_naming_optim_lr(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pretrain", "--method", "amdim", "--out", str(out), *TINY, "train.steps=1"]
    assert main(args) == 0
    ckpt = out / "checkpoints" / "last.pt"
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert main([*args[:-1], "train.steps=2", "optim.lr=0.001", "--resume", "latest"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr" in err and "train.steps" not in err
    assert ckpt.read_bytes() == before and load_checkpoint(ckpt)["step"] == 1
    # the same resume without the lr change goes on
    assert main([*args[:-1], "train.steps=2", "--resume", "latest"]) == 0
    assert load_checkpoint(ckpt)["step"] == 2
