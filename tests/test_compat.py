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
