"""The backbone registry: a backbone added by one decorated builder trains, checkpoints, exports and loads back
through every consumer; unknown names are errors that list the registered ones."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tvdim.config import load_config
from tvdim.errors import CheckpointError, ConfigError
from tvdim.hub import export_checkpoint, from_pretrained
from tvdim.loading import embed_images, load_method
from tvdim.methods import build_method
from tvdim.models.backbones import BACKBONES, build_image_encoder, image_spec, register_backbone
from tvdim.models.encoder import AmdimEncoder
from tvdim.models.image_encoder import EncoderOutput, ImageEncoder
from tvdim.train.trainer import pretrain

TINY = ["model.n_rkhs=16", "train.batch_size=8", "data.synth_train=32", "data.synth_test=16",
        "train.progress=false", "train.device=cpu", "train.steps=2", "train.method=amdim"]


class PoolNet(ImageEncoder):
    """A deliberately tiny backbone: one conv, local maps pooled to 5x5 and 7x7, global mean."""

    def __init__(self, image_size: int, n_rkhs: int, width: int) -> None:
        super().__init__()
        self.image_size, self.n_rkhs = image_size, n_rkhs
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.proj = nn.Conv2d(width, n_rkhs, 1)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        h = self.proj(torch.relu(self.conv(x)))
        return EncoderOutput(h.mean((2, 3)), nn.functional.adaptive_avg_pool2d(h, 5),
                             nn.functional.adaptive_avg_pool2d(h, 7))


@pytest.fixture
def poolnet():
    @register_backbone("poolnet-test", spec=lambda m: {"image_size": m.image_size, "n_rkhs": m.n_rkhs, "width": 4})
    def build(image: dict) -> ImageEncoder:
        return PoolNet(image["image_size"], image["n_rkhs"], image["width"])
    yield "poolnet-test"
    del BACKBONES["poolnet-test"]


def test_amdim_is_the_default_and_builds_the_reference_encoder():
    cfg = load_config(overrides=["model.ndf=8", "model.n_rkhs=16", "model.n_depth=1"])
    assert cfg.model.backbone == "amdim"
    assert image_spec(cfg.model) == {"architecture": "amdim", "image_size": 32, "ndf": 8, "n_rkhs": 16,
                                     "n_depth": 1, "use_bn": False}
    enc = build_image_encoder(cfg.model)
    assert type(enc) is AmdimEncoder and enc.n_rkhs == 16 and enc.image_size == 32


def test_a_registered_backbone_trains_exports_and_loads_back(poolnet, tmp_path):
    cfg = load_config(overrides=TINY + [f"model.backbone={poolnet}", f"train.out_dir={tmp_path / 'run'}"])
    assert isinstance(build_method(cfg).image_encoder, PoolNet)
    res = pretrain(cfg)
    loaded = load_method(res.checkpoint)
    assert isinstance(loaded.method.image_encoder, PoolNet) and loaded.step == 2
    out = export_checkpoint(res.checkpoint, tmp_path / "export")
    image = json.loads((out / "config.json").read_text())["image"]
    assert image == {"architecture": poolnet, "image_size": 32, "n_rkhs": 16, "width": 4, "feature": "r1"}
    model = from_pretrained(out)
    assert isinstance(model.image_encoder, PoolNet)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.encode_images(x), embed_images(loaded.method.image_encoder, x))


def test_unknown_backbone_is_a_config_error_listing_the_registered_ones(poolnet):
    cfg = load_config(overrides=["model.backbone=nosuchnet"])
    with pytest.raises(ConfigError, match="unknown model.backbone 'nosuchnet'.*amdim.*poolnet-test"):
        build_method(cfg)


def test_an_export_naming_an_unregistered_architecture_is_refused(poolnet, tmp_path):
    cfg = load_config(overrides=TINY + [f"model.backbone={poolnet}", f"train.out_dir={tmp_path / 'run'}"])
    out = export_checkpoint(pretrain(cfg).checkpoint, tmp_path / "export")
    del BACKBONES[poolnet]
    try:
        with pytest.raises(CheckpointError, match="image.architecture='poolnet-test'"):
            from_pretrained(out)
    finally:
        BACKBONES[poolnet] = None  # the fixture deletes it again


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="'amdim' is registered twice"):
        register_backbone("amdim", spec=lambda m: {})(lambda image: None)
