"""Export guards: a weights file missing a tensor is refused on load; a 64 / 128 px export states the right
evaluation resize (the data package's rule, AMDIM's test transforms) in config.json and the model card."""
from __future__ import annotations

import json

import pytest
from torchvision import transforms as T

import tvdim
from tvdim.config import load_config
from tvdim.data.transforms import EVAL_RESIZE, eval_transform
from tvdim.errors import CheckpointError
from tvdim.hub import export_checkpoint
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=16",
        "data.synth_test=8", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "train.device=cpu", "train.compile=off"]
# AMDIM's own test transforms: STL-10 at 64 px Resize(70) + CenterCrop(64); ImageNet at 128 px Resize(146) +
# CenterCrop(128); CIFAR at 32 px no resize
AMDIM_RESIZE = {32: 32, 64: 70, 128: 146}


def _run(root, method, size, steps=1):
    return pretrain(load_config(overrides=TINY + [f"train.method={method}", f"train.out_dir={root}",
                                                  f"model.image_size={size}", f"train.steps={steps}"])).checkpoint


@pytest.fixture(scope="module")
def tvdim_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard_export")
    return export_checkpoint(_run(root / "run", "tvdim", 32), root / "ex")


def _drop_tensor(folder, prefix):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    name = sorted(k for k in tensors if k.startswith(prefix))[0]
    del tensors[name]
    save_file(tensors, str(path), metadata=meta)
    return name


@pytest.mark.parametrize("prefix", ["image_encoder.", "text_encoder."])
def test_missing_tensor_is_refused_not_loaded_silently(tvdim_export, tmp_path, prefix):
    import shutil

    folder = tmp_path / "cut"
    shutil.copytree(tvdim_export, folder)
    tvdim.from_pretrained(folder)  # the intact copy loads
    name = _drop_tensor(folder, prefix)
    with pytest.raises(CheckpointError) as info:
        tvdim.from_pretrained(folder)
    msg = str(info.value)
    assert "model.safetensors" in msg and name in msg


def _resize_of(size):
    """The resize the data package's evaluation transform really applies (read from the transform itself)."""
    resize = [t for t in eval_transform(size).transforms if isinstance(t, T.Resize)][0].size
    return resize if isinstance(resize, int) else resize[0]


@pytest.mark.parametrize("size", [64, 128])
def test_export_states_the_eval_resize(tmp_path, size):
    expect = AMDIM_RESIZE[size]
    assert EVAL_RESIZE[size] == expect == _resize_of(size)
    out = export_checkpoint(_run(tmp_path / "run", "random", size, steps=1), tmp_path / "ex")
    norm = json.loads((out / "config.json").read_text())["normalization"]
    assert norm["resize"] == expect and norm["crop"] == size
    card = (out / "README.md").read_text()
    assert f"resize the shorter side to {expect} px" in card and f"centre crop {size} px" in card
    model = tvdim.from_pretrained(out)
    assert model.image_size == size and model.normalization["resize"] == expect
