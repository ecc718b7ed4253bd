"""AMDIM image encoder: shapes per resolution and input checks."""
from __future__ import annotations

import pytest
import torch

from tvdim.errors import ConfigError
from tvdim.models.encoder import AmdimEncoder



@pytest.mark.parametrize("size", [32, 64, 128])
def test_encoder_output_shapes(size):
    torch.manual_seed(0)
    enc = AmdimEncoder(size, ndf=8, n_rkhs=32, n_depth=1)
    out = enc(torch.randn(2, 3, size, size))
    assert out.r1.shape == (2, 32)
    assert out.r5.shape == (2, 32, 5, 5)
    assert out.r7.shape == (2, 32, 7, 7)
    assert all(bool(torch.isfinite(t).all()) for t in out)
    assert enc.embed(torch.randn(2, 3, size, size)).shape == (2, 32)


def test_encoder_depth_and_bn_variants_keep_shapes():
    enc = AmdimEncoder(32, ndf=4, n_rkhs=16, n_depth=2, use_bn=True)
    out = enc(torch.randn(3, 3, 32, 32))
    assert out.r1.shape == (3, 16) and out.r5.shape == (3, 16, 5, 5) and out.r7.shape == (3, 16, 7, 7)


def test_encoder_gradients_reach_first_layer():
    enc = AmdimEncoder(32, ndf=8, n_rkhs=32, n_depth=1)
    out = enc(torch.randn(2, 3, 32, 32))
    (out.r1.sum() + out.r5.sum() + out.r7.sum()).backward()
    first = next(enc.parameters())
    assert first.grad is not None and float(first.grad.abs().sum()) > 0


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (2, 3, 32, 31), (2, 1, 32, 32), (3, 32, 32)])
def test_wrong_input_size_is_a_clear_error(shape):
    enc = AmdimEncoder(32, ndf=8, n_rkhs=32, n_depth=1)
    with pytest.raises(ValueError, match=r"32px.*\[B, 3, 32, 32\]") as info:
        enc(torch.randn(*shape))
    assert str(list(shape)) in str(info.value)


@pytest.mark.parametrize("size", [16, 48, 96, 224])
def test_invalid_image_size_is_config_error(size):
    with pytest.raises(ConfigError, match=str(size)):
        AmdimEncoder(size, ndf=8, n_rkhs=32, n_depth=1)
