"""Checkpoints and exports written before the layering (commit 62e1dc7) still load, as the same model."""
from __future__ import annotations

import json
from pathlib import Path

import torch

import tvdim

FIXTURE = Path(__file__).parent / "fixtures" / "compat_62e1dc7"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


def batch() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_old_checkpoint_loads_and_gives_the_same_image_features():
    loaded = tvdim.load_method(FIXTURE / "last.pt")
    assert loaded.config.train.method == "tvdim" and loaded.step == 2
    with torch.no_grad():
        r1 = loaded.method.image_encoder(batch()).r1
    torch.testing.assert_close(r1, torch.tensor(EXPECTED["r1"]), rtol=1e-5, atol=1e-6)


def test_old_export_loads_and_gives_the_same_image_and_text_features():
    model = tvdim.from_pretrained(FIXTURE / "export")
    with torch.no_grad():
        r1 = model.image_encoder(batch()).r1
    torch.testing.assert_close(r1, torch.tensor(EXPECTED["r1"]), rtol=1e-5, atol=1e-6)
    sentence = tvdim.embed_texts(model.text_encoder, model.tokenizer, EXPECTED["captions"])
    torch.testing.assert_close(sentence, torch.tensor(EXPECTED["sentence"]), rtol=1e-5, atol=1e-6)


def test_a_clip_checkpoint_from_before_the_learnt_scale_loads_with_its_fixed_temperature(tmp_path):
    """clip now learns CLIP's logit scale; a checkpoint written before (no loss.learn_scale in its config, no
    logit_scale tensor) keeps the fixed temperature it was trained with."""
    from tvdim.config import load_config
    from tvdim.train.checkpoint import load_checkpoint, save_checkpoint
    from tvdim.train.trainer import pretrain

    cfg = load_config(overrides=["model.ndf=8", "model.n_rkhs=16", "model.n_depth=1", "train.batch_size=8",
                                 "data.synth_train=32", "data.synth_test=16", "text.dim=16", "text.layers=1",
                                 "text.heads=2", "text.vocab_size=120", "train.progress=false", "train.device=cpu",
                                 "train.steps=1", "train.method=clip", "loss.learn_scale=off",
                                 f"train.out_dir={tmp_path / 'run'}"])
    state = load_checkpoint(pretrain(cfg).checkpoint)
    del state["config"]["loss"]["learn_scale"]
    assert not any("logit_scale" in k for k in state["model"])
    old = save_checkpoint(tmp_path / "old.pt", state)
    loaded = tvdim.load_method(old)
    assert loaded.config.loss.learn_scale == "off" and loaded.method.logit_scale is None
