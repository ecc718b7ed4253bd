"""timm backbones: built with random weights at any size they accept, local maps from their last two stages,
pooled output as the representation; trained, evaluated and exported by tvdim, and loadable by timm alone."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import timm
from tvdim.config import load_config
from tvdim.errors import CheckpointError, ConfigError
from tvdim.eval.evaluate import evaluate
from tvdim.hub import TIMM_WEIGHTS, export_checkpoint, from_pretrained
from tvdim.loading import load_method
from tvdim.models.backbones import build_image_encoder, load_initial_weights
from tvdim.models.timm_backbone import TimmEncoder, timm_kwargs
from tvdim.train.trainer import pretrain

TINY = ["train.batch_size=8", "data.synth_train=32", "data.synth_test=24", "text.dim=32", "text.layers=1",
        "text.vocab_size=200", "train.progress=false", "train.device=cpu", "train.steps=2", "eval.linear_epochs=1",
        "eval.mlp_epochs=1", "eval.few_shot=0", "eval.logreg_cs=[]"]


def batch(size=32, n=3, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name, size, r5, r7", [("resnet10t", 32, 1, 2), ("resnet10t", 64, 2, 4),
                                                ("vit_tiny_patch16_224", 32, 8, 8), ("vit_tiny_patch16_224", 64, 8, 8)])
def test_pooled_output_and_the_last_two_stages(name, size, r5, r7):
    enc = build_image_encoder(load_config(overrides=[f"model.backbone={name}", f"model.image_size={size}"]).model)
    assert isinstance(enc, TimmEncoder) and enc.image_size == size
    enc.eval()
    x = batch(size)
    out = enc(x)
    with torch.no_grad():
        pooled = enc.body(x)  # timm's num_classes=0 features
    torch.testing.assert_close(out.r1, pooled)
    assert out.r5.shape == (3, enc.n_rkhs, r5, r5) and out.r7.shape == (3, enc.n_rkhs, r7, r7)


def test_small_vits_get_a_patch_that_suits_the_size():
    assert timm_kwargs("vit_small_patch16_224", 32) == {"img_size": 32, "patch_size": 4}
    assert timm_kwargs("vit_small_patch16_224", 64) == {"img_size": 64, "patch_size": 8}
    assert timm_kwargs("vit_small_patch16_224", 224) == {"img_size": 224}
    assert timm_kwargs("resnet18", 32) == {}


def test_a_size_the_backbone_cannot_take_is_a_config_error():
    with pytest.raises(ConfigError, match="model.backbone=convnext_atto cannot run at model.image_size=8"):
        build_image_encoder(load_config(overrides=["model.backbone=convnext_atto", "model.image_size=8"]).model)


def test_slip_on_a_timm_backbone_trains_evaluates_exports_and_loads_in_timm(tmp_path):
    cfg = load_config(overrides=TINY + ["train.method=slip", "model.backbone=resnet10t",
                                        f"train.out_dir={tmp_path / 'run'}"])
    res = pretrain(cfg)
    loaded = load_method(res.checkpoint)
    assert isinstance(loaded.method.image_encoder, TimmEncoder)
    results = evaluate(loaded, out_dir=tmp_path / "eval")
    assert results["feature_dim"] == 512 and "retrieval" in results or results["tasks"]
    out = export_checkpoint(res.checkpoint, tmp_path / "export")
    conf = json.loads((out / "config.json").read_text())
    assert conf["image"]["architecture"] == "resnet10t" and conf["image"]["family"] == "timm"
    assert conf["normalization"]["resize"] == 32
    card = (out / "README.md").read_text()
    assert "## Use in timm" in card and TIMM_WEIGHTS in card
    model = from_pretrained(out)
    x = batch()
    ours = model.encode_images(x)
    body = timm.create_model("resnet10t", pretrained=True, num_classes=0,
                             pretrained_cfg_overlay=dict(file=str(out / TIMM_WEIGHTS))).eval()
    with torch.no_grad():
        torch.testing.assert_close(body(x), ours)
    torch.testing.assert_close(ours, loaded.method.image_encoder.eval()(x).r1.detach())


def test_model_init_loads_a_timm_weights_file(tmp_path):
    ref = timm.create_model("resnet10t", pretrained=False, num_classes=10)  # with a classifier: ignored
    path = tmp_path / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    enc = build_image_encoder(load_config(overrides=["model.backbone=resnet10t"]).model)
    load_initial_weights(enc, str(path))
    for k, v in enc.body.state_dict().items():
        torch.testing.assert_close(v, ref.state_dict()[k], msg=k)
    partial = {k: v.contiguous() for k, v in ref.state_dict().items() if not k.startswith("layer4.")}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match="partial.safetensors lacks .* backbone tensors"):
        load_initial_weights(enc, str(tmp_path / "partial.safetensors"))
    with pytest.raises(ConfigError, match="model.init is for timm backbones"):
        load_initial_weights(build_image_encoder(load_config().model), str(path))


def test_a_fresh_run_starts_from_model_init(tmp_path):
    """pretrain applies model.init (lr 0: the trained parameters are still the file's); amdim refuses it."""
    ref = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    path = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    cfg = load_config(overrides=TINY + ["train.method=simclr", "model.backbone=resnet10t", f"model.init={path}",
                                        "optim.lr=0", "optim.probe_lr=0", f"train.out_dir={tmp_path / 'run'}"])
    body = load_method(pretrain(cfg).checkpoint).method.image_encoder.body
    for k, v in body.named_parameters():
        torch.testing.assert_close(v.detach(), dict(ref.named_parameters())[k].detach(), msg=k)
    with pytest.raises(ConfigError, match="model.init is for timm backbones"):
        pretrain(load_config(overrides=TINY + ["train.method=amdim", "model.ndf=8", "model.n_rkhs=16",
                                               "model.n_depth=1", f"model.init={path}",
                                               f"train.out_dir={tmp_path / 'amdim'}"]))


def test_a_checkpoint_trained_from_model_init_loads_without_that_file(tmp_path):
    """The checkpoint holds the weights: evaluating or resuming it must not need the starting weights file."""
    init = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet10t", num_classes=0).state_dict().items()},
              str(init))
    cfg = load_config(overrides=TINY + ["train.method=simclr", "model.backbone=resnet10t", f"model.init={init}",
                                        f"train.out_dir={tmp_path / 'run'}"])
    res = pretrain(cfg)
    init.unlink()
    loaded = load_method(res.checkpoint)
    assert loaded.config.model.init == str(init)  # the record of how the run started is kept
    assert pretrain(load_config(overrides=TINY + ["train.steps=3", "train.method=simclr",
                                                        "model.backbone=resnet10t", f"model.init={init}",
                                                        f"train.out_dir={tmp_path / 'run'}"]), resume="latest").step == 3


def test_unknown_backbone_names_timm():
    with pytest.raises(ConfigError, match="unknown model.backbone 'resnet_nope'.*any timm model name"):
        build_image_encoder(load_config(overrides=["model.backbone=resnet_nope"]).model)
