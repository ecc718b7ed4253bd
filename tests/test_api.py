"""Python API: load encoders from checkpoints and embed images / captions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tvdim.api import embed_images, embed_texts, load_encoder, load_method, load_text_encoder
from tvdim.config import load_config
from tvdim.errors import CheckpointError
from tvdim.train.checkpoint import load_checkpoint, save_checkpoint
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "train.device=cpu", "train.steps=2"]



@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    return {m: pretrain(load_config(overrides=TINY + [f"train.method={m}", f"train.out_dir={root / m}"])).checkpoint
            for m in ("amdim", "tvdim")}


def _images(n, size=40):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size + 7, 3), dtype=np.uint8)) for _ in range(n)]


def test_load_encoder_and_embed_pil_images(ckpts):
    enc = load_encoder(ckpts["amdim"])
    assert not enc.training and all(not p.requires_grad for p in enc.parameters())
    imgs = _images(5) + [Image.new("L", (20, 20), 128)]  # a grayscale image is converted to RGB
    feats = embed_images(enc, imgs, batch_size=4)
    assert feats.shape == (6, 32) and bool(torch.isfinite(feats).all())
    # batching does not change the result (eval mode: BN uses running statistics)
    assert torch.allclose(embed_images(enc, imgs, batch_size=1), feats, atol=1e-5)
    assert not torch.allclose(feats[0], feats[1])


def test_embed_tensor_batch_matches_encoder(ckpts):
    enc = load_encoder(ckpts["tvdim"])
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(embed_images(enc, x), enc(x).r1, atol=1e-6)


def test_loaded_weights_are_the_checkpoint_weights(ckpts):
    enc = load_encoder(ckpts["amdim"])
    saved = load_checkpoint(ckpts["amdim"])["model"]
    for k, v in enc.state_dict().items():
        assert torch.equal(v, saved[f"image_encoder.{k}"])


def test_text_encoder_and_embed_texts(ckpts):
    text_enc, tok = load_text_encoder(ckpts["tvdim"])
    assert not text_enc.training
    caps = ["a small red circle", "a large blue square at the bottom", "a red circle"]
    t = embed_texts(text_enc, tok, caps)
    assert t.shape == (3, 32) and bool(torch.isfinite(t).all())
    # each caption's feature does not depend on the others in the batch (padding is masked)
    assert torch.allclose(embed_texts(text_enc, tok, caps[:1]), t[:1], atol=1e-5)
    assert torch.allclose(embed_texts(text_enc, tok, caps, batch_size=1), t, atol=1e-5)


def test_load_text_encoder_on_amdim_is_checkpoint_error(ckpts):
    with pytest.raises(CheckpointError, match="amdim"):
        load_text_encoder(ckpts["amdim"])


def test_load_method_metadata(ckpts):
    loaded = load_method(ckpts["tvdim"])
    assert loaded.step == 2 and loaded.config.train.method == "tvdim"
    assert loaded.tokenizer is not None and set(loaded.tasks) == {"shape", "colour", "count"}
    assert not loaded.method.training


def test_mismatched_weights_are_checkpoint_error(ckpts, tmp_path):
    state = load_checkpoint(ckpts["amdim"])
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("image_encoder.to1")}
    bad = save_checkpoint(tmp_path / "partial.pt", {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(CheckpointError, match="partial.pt"):
        load_encoder(bad)
