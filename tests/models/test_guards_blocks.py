"""AMDIM blocks and encoder against METHOD.md ("Image encoder"): BN placement when ``use_bn`` is on (and off by
default), padding and strides of the residual units, the 128 px reflect-padded stem, the init rules and the loading
of checkpoints that already carry the biases."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tvdim.config import ModelConfig
from tvdim.models.blocks import ConvBNReLU, ConvResBlock, ConvResNxN, FakeRKHSConvNet
from tvdim.models.encoder import AmdimEncoder


def _bns(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


# --- BN: where use_bn puts it, counted from the spec ----------------------------------------------------------

def _conv(n_in, n_out, k, bias=False):
    return n_in * n_out * k * k + (n_out if bias else 0)


def _unit(n_in, n_out, k, bn):
    """ConvResNxN: conv k -> BN? (2 n_out affine parameters) -> ReLU -> 1x1 conv, k x k shortcut conv with a bias
    only when narrowing."""
    return (_conv(n_in, n_out, k) + (2 * n_out if bn else 0) + _conv(n_out, n_out, 1)
            + (_conv(n_in, n_out, k, bias=True) if n_out < n_in else 0))


def _block(n_in, n_out, k, depth, bn):
    return _unit(n_in, n_out, k, bn) + (depth - 1) * _unit(n_out, n_out, 1, bn)


def _head(n_in, n_out, bn):
    """FakeRKHSConvNet: 1x1 conv -> BN? -> ReLU -> 1x1 conv, + 1x1 shortcut with a bias, then an affine BN."""
    return (_conv(n_in, n_out, 1) + (2 * n_out if bn else 0) + _conv(n_out, n_out, 1)
            + _conv(n_in, n_out, 1, bias=True) + 2 * n_out)


def _encoder(size, ndf, n_rkhs, depth, bn):
    """The stem never has BN (METHOD.md: 'never followed by BN'); 'BN' after the 7x7 stage only with use_bn."""
    if size == 32:
        c7 = 4 * ndf
        body = (_conv(3, ndf, 3, True) + _unit(ndf, ndf, 1, bn) + _block(ndf, 2 * ndf, 4, depth, bn)
                + _block(2 * ndf, c7, 2, depth, bn))
    else:
        c7 = 8 * ndf
        stem = _conv(3, ndf, 3, True) if size == 64 else _conv(3, ndf, 5, True) + _conv(ndf, ndf, 3, True)
        body = (stem + _block(ndf, 2 * ndf, 4, depth, bn) + _block(2 * ndf, 4 * ndf, 4, depth, bn)
                + _block(4 * ndf, c7, 2, depth, bn))
    body += 2 * c7 if bn else 0
    top = (_block(c7, c7, 3, depth, bn) + _block(c7, c7, 3, depth, bn) + _unit(c7, n_rkhs, 3, bn) + 2 * n_rkhs)
    return body + top + 2 * _head(c7, n_rkhs, bn)


@pytest.mark.parametrize("size,ndf,n_rkhs,depth", [(32, 4, 8, 2), (32, 3, 20, 1), (64, 2, 8, 2), (128, 2, 24, 2)])
@pytest.mark.parametrize("use_bn", [False, True])
def test_parameter_count_with_and_without_bn(size, ndf, n_rkhs, depth, use_bn):
    enc = AmdimEncoder(size, ndf=ndf, n_rkhs=n_rkhs, n_depth=depth, use_bn=use_bn)
    assert _n_params(enc) == _encoder(size, ndf, n_rkhs, depth, use_bn)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_use_bn_reaches_every_residual_unit_and_head(size):
    enc = AmdimEncoder(size, ndf=2, n_rkhs=8, n_depth=2, use_bn=True)
    units = [m for m in enc.modules() if isinstance(m, ConvResNxN)]
    assert units and all(isinstance(u.bn1, nn.BatchNorm2d) and u.bn1.num_features == u.n_out for u in units)
    for head in (enc.rkhs5, enc.rkhs7):
        assert isinstance(head.bn1, nn.BatchNorm2d)
    assert isinstance(enc.to7[-1], nn.BatchNorm2d)  # "-> BN" after the 7x7 stage
    off = AmdimEncoder(size, ndf=2, n_rkhs=8, n_depth=2, use_bn=False)
    # without use_bn only the two always-on BNs remain: after r1 and at the end of each local head
    assert len(_bns(off)) == 3 and len(_bns(enc)) == 3 + len(units) + 2 + 1


def test_bn_is_off_by_default():
    """METHOD.md: 'BN off by default'; the blocks default to no BN, as the encoder and its config do."""
    assert ModelConfig().use_bn is False
    assert not _bns(ConvResNxN(4, 6, 3)) and not _bns(ConvResBlock(4, 6, 3, 1, 2))
    assert isinstance(FakeRKHSConvNet(4, 6).bn1, nn.Identity)
    assert not _bns(ConvBNReLU(3, 4, 3)) and ConvBNReLU(3, 4, 3)[0].bias is not None
    enc = AmdimEncoder(ndf=2, n_rkhs=8, n_depth=1)
    assert len(_bns(enc)) == 3


def test_default_image_size_is_the_configs():
    enc = AmdimEncoder(ndf=2, n_rkhs=8, n_depth=1)
    size = ModelConfig().image_size
    assert enc.image_size == size
    assert enc(torch.randn(2, 3, size, size)).r1.shape == (2, 8)


def test_conv_bn_relu_with_bn():
    """With BN the stem-style block drops its convolution bias (BN has its own shift) and applies BN before ReLU."""
    torch.manual_seed(0)
    block = ConvBNReLU(3, 5, 3, use_bn=True)
    conv, bn = block[0], block[1]
    assert conv.bias is None and isinstance(bn, nn.BatchNorm2d) and bn.num_features == 5
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
    block.eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(block(x), torch.relu(bn(conv(x))), atol=1e-6)
    plain = ConvBNReLU(3, 5, 3)
    assert torch.allclose(plain(x), torch.relu(F.conv2d(x, plain[0].weight, plain[0].bias)), atol=1e-6)


# --- padding and strides --------------------------------------------------------------------------------------

def test_128px_stem_uses_reflect_padding():
    torch.manual_seed(0)
    enc = AmdimEncoder(128, ndf=2, n_rkhs=8, n_depth=1)
    conv = enc.to7[0][0]
    assert conv.kernel_size == (5, 5) and conv.stride == (2, 2)
    x = torch.randn(1, 3, 128, 128)
    want = torch.relu(F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), conv.weight, conv.bias, stride=2))
    zeros = torch.relu(F.conv2d(x, conv.weight, conv.bias, stride=2, padding=2))
    got = enc.to7[0](x)
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, zeros, atol=1e-3)


def test_conv_bn_relu_passes_its_padding_mode():
    torch.manual_seed(0)
    block = ConvBNReLU(3, 4, 3, 1, 1, pad_mode="reflect")
    x = torch.randn(1, 3, 6, 6)
    want = torch.relu(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), block[0].weight, block[0].bias))
    assert torch.allclose(block(x), want, atol=1e-5)


def _with_branch(unit, seed=1):
    """Give the zero-initialised 1x1 conv random weights so the residual branch shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        unit.conv2.weight.copy_(torch.randn(unit.conv2.weight.shape, generator=g) * 0.1)
    return unit


@pytest.mark.parametrize("n_in,n_out,k,stride,pad", [(4, 6, 3, 1, 1), (4, 4, 3, 2, 1), (6, 4, 3, 1, 1),
                                                     (4, 4, 2, 1, 0), (4, 4, 1, 2, 0), (4, 6, 1, 2, 0),
                                                     (4, 4, 4, 2, 1), (3, 3, 1, 1, 0)])
def test_residual_unit_is_branch_plus_shortcut(n_in, n_out, k, stride, pad):
    """Output size ``(H + 2 pad - k) // s + 1``; branch conv(k, s, pad) -> ReLU -> 1x1 conv; shortcut
    avg_pool(k, s, pad) with zero channels up to n_out, or a k x k conv (same stride and padding) when narrowing."""
    torch.manual_seed(0)
    unit = _with_branch(ConvResNxN(n_in, n_out, k, stride, pad))
    x = torch.randn(2, n_in, 9, 9)
    out = unit(x)
    side = (9 + 2 * pad - k) // stride + 1
    assert out.shape == (2, n_out, side, side)
    w1, w2 = unit.conv1.weight, unit.conv2.weight
    branch = F.conv2d(torch.relu(F.conv2d(x, w1, stride=stride, padding=pad)), w2)
    if n_out < n_in:
        short = F.conv2d(x, unit.shortcut_conv.weight, unit.shortcut_conv.bias, stride=stride, padding=pad)
    else:
        short = F.avg_pool2d(x, k, stride, pad)
        short = torch.cat([short, torch.zeros(2, n_out - n_in, side, side)], 1)
    assert torch.allclose(out, branch + short, atol=1e-5)


def test_conv1_init_is_pytorchs_default_bound():
    """kaiming_uniform(a=sqrt(5)): U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2))."""
    torch.manual_seed(0)
    unit = ConvResNxN(64, 64, 3)
    w = unit.conv1.weight.detach()
    fan_in = w[0].numel()
    bound = math.sqrt(2 / (1 + 5)) * math.sqrt(3 / fan_in)
    assert float(w.abs().max()) <= bound
    assert float(w.abs().max()) >= 0.99 * bound  # 36864 draws: the largest one is within 1% of the bound
    assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)


# --- checkpoints that carry the biases: nothing is zeroed -----------------------------------------------------

def test_current_checkpoints_keep_their_biases():
    torch.manual_seed(0)
    enc = AmdimEncoder(64, ndf=8, n_rkhs=32, n_depth=1)  # c7 = 64 > n_rkhs: a narrowing unit with a shortcut conv
    with torch.no_grad():
        enc.to7[0][0].bias.uniform_(0.5, 1.0)
        enc.to1[1].shortcut_conv.bias.uniform_(0.5, 1.0)
    state = enc.state_dict()
    fresh = AmdimEncoder(64, ndf=8, n_rkhs=32, n_depth=1)
    fresh.load_state_dict(state)
    for k, v in state.items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_bias_free_stem_loads_strictly():
    """A stem with BN has no bias: nothing to add, the strict load of its own state works."""
    block = ConvBNReLU(3, 4, 3, use_bn=True)
    state = block.state_dict()
    assert "0.bias" not in state
    ConvBNReLU(3, 4, 3, use_bn=True).load_state_dict(state)


# --- local heads ----------------------------------------------------------------------------------------------

def test_square_local_head_starts_near_identity():
    """n_out == n_in also gets the near-identity shortcut (n_out >= n_in)."""
    torch.manual_seed(0)
    head = FakeRKHSConvNet(6, 6)
    w = head.shortcut.weight.detach()[:, :, 0, 0]
    assert torch.equal(torch.diagonal(w), torch.ones(6))


def test_local_head_off_diagonal_is_symmetric_noise():
    """Off-diagonal shortcut weights ~ U(-0.01, 0.01): both signs, spread over the interval."""
    torch.manual_seed(0)
    head = FakeRKHSConvNet(16, 32)
    w = head.shortcut.weight.detach()[:, :, 0, 0].clone()
    idx = torch.arange(16)
    w[idx, idx] = float("nan")
    off = w[~torch.isnan(w)]
    assert float(off.min()) < -0.009 and float(off.max()) > 0.009 and float(off.abs().max()) <= 0.01
    assert abs(float(off.mean())) < 0.001
