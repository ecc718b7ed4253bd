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


# --- architecture against METHOD.md ("Image encoder"), counted by hand -----------------------------------------

def _conv(n_in, n_out, k, bias=False):
    return n_in * n_out * k * k + (n_out if bias else 0)


def _unit(n_in, n_out, k):
    """ConvResNxN: conv k (no bias) + 1x1 conv; a k x k shortcut conv with a bias (as the reference's conv3) only
    when the unit narrows the channels."""
    return _conv(n_in, n_out, k) + _conv(n_out, n_out, 1) + (_conv(n_in, n_out, k, bias=True) if n_out < n_in else 0)


def _block(n_in, n_out, k, depth):
    return _unit(n_in, n_out, k) + (depth - 1) * _unit(n_out, n_out, 1)


def _rkhs_head(n_in, n_out):
    """1x1 conv -> ReLU -> 1x1 conv, plus a 1x1 shortcut with a bias, then an affine BN."""
    return _conv(n_in, n_out, 1) + _conv(n_out, n_out, 1) + _conv(n_in, n_out, 1, bias=True) + 2 * n_out


def expected_parameters(size, ndf, n_rkhs, depth):
    """METHOD.md: the stem convolutions (no BN after them) have a bias, as in the reference."""
    if size == 32:
        c7 = 4 * ndf
        body = (_conv(3, ndf, 3, bias=True) + _unit(ndf, ndf, 1) + _block(ndf, 2 * ndf, 4, depth)
                + _block(2 * ndf, c7, 2, depth))
    else:
        c7 = 8 * ndf
        stem = _conv(3, ndf, 3, bias=True) if size == 64 else _conv(3, ndf, 5, bias=True) + _conv(ndf, ndf, 3, True)
        body = (stem + _block(ndf, 2 * ndf, 4, depth) + _block(2 * ndf, 4 * ndf, 4, depth)
                + _block(4 * ndf, c7, 2, depth))
    top = _block(c7, c7, 3, depth) + _block(c7, c7, 3, depth) + _unit(c7, n_rkhs, 3) + 2 * n_rkhs
    return body + top + 2 * _rkhs_head(c7, n_rkhs)


@pytest.mark.parametrize("size,ndf,n_rkhs,depth", [(32, 8, 32, 1), (32, 6, 40, 3), (64, 8, 32, 2), (64, 4, 64, 1),
                                                  (128, 4, 24, 2)])
def test_parameter_count_matches_method_md(size, ndf, n_rkhs, depth):
    enc = AmdimEncoder(size, ndf=ndf, n_rkhs=n_rkhs, n_depth=depth)
    assert sum(p.numel() for p in enc.parameters()) == expected_parameters(size, ndf, n_rkhs, depth)


def test_default_32px_encoder_size():
    """The default config (ndf 128, n_rkhs 1024, n_depth 3) at 32 px, counted by hand once."""
    enc = AmdimEncoder(32)
    assert sum(p.numel() for p in enc.parameters()) == expected_parameters(32, 128, 1024, 3) == 20_033_024


# (channels, height) after each stage, METHOD.md: "32 px: conv3 (30x30, ndf) -> ConvResNxN 1x1 -> block k4 s2
# (14, 2ndf) -> block k2 s2 (7, 4ndf) -> BN -> block k3 (5, 4ndf) -> block k3 (3, 4ndf) -> ConvResNxN k3 (1, n_rkhs)"
WIDTHS = {
    32: [(1, 30), (1, 30), (2, 14), (4, 7), (4, 7), (4, 5), (4, 3), ("r", 1)],
    64: [(1, 62), (2, 30), (4, 14), (8, 7), (8, 7), (8, 5), (8, 3), ("r", 1)],
    128: [(1, 64), (1, 62), (2, 30), (4, 14), (8, 7), (8, 7), (8, 5), (8, 3), ("r", 1)],
}


@pytest.mark.parametrize("size", [32, 64, 128])
def test_stage_widths_and_sizes_match_method_md(size):
    ndf, n_rkhs = 4, 24
    enc = AmdimEncoder(size, ndf=ndf, n_rkhs=n_rkhs, n_depth=2)
    stages = list(enc.to7) + [enc.to5, enc.to1[0], enc.to1[1]]
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:]))) for m in stages]
    enc(torch.randn(2, 3, size, size))
    for h in hooks:
        h.remove()
    want = [(n_rkhs if c == "r" else c * ndf, h, h) for c, h in WIDTHS[size]]
    assert seen == want


@pytest.mark.parametrize("use_bn", [False, True])
@pytest.mark.parametrize("size", [32, 64, 128])
def test_stem_convolutions_have_a_bias_and_no_bn(size, use_bn):
    """The reference's stem (Conv3x3 with use_bn False, also at 128 px) has a bias and no BN; the convolutions of
    the residual units have none."""
    enc = AmdimEncoder(size, ndf=4, n_rkhs=16, n_depth=1, use_bn=use_bn)
    stem = list(enc.to7[:2] if size == 128 else enc.to7[:1])
    for part in stem:
        assert part[0].bias is not None
        assert not [m for m in part.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    units = [m for m in enc.modules() if type(m).__name__ == "ConvResNxN"]
    assert units and all(u.conv1.bias is None and u.conv2.bias is None for u in units)


def test_checkpoints_from_before_the_biases_load_as_zero_biases():
    torch.manual_seed(0)
    enc = AmdimEncoder(64, ndf=8, n_rkhs=32, n_depth=1)  # c7 = 64 > n_rkhs: a narrowing unit with a shortcut conv
    old = {k: v for k, v in enc.state_dict().items() if not k.endswith(("to7.0.0.bias", "shortcut_conv.bias"))}
    assert len(old) == len(enc.state_dict()) - 2
    fresh = AmdimEncoder(64, ndf=8, n_rkhs=32, n_depth=1)
    fresh.load_state_dict(old)  # strict: no missing key
    assert bool((fresh.to7[0][0].bias == 0).all()) and bool((fresh.to1[1].shortcut_conv.bias == 0).all())
    assert torch.equal(fresh.to7[0][0].weight, enc.to7[0][0].weight)


# --- initialisation: every residual branch starts at zero, local heads start near the identity ----------------

def test_residual_units_start_as_their_shortcut():
    from tvdim.models.blocks import ConvResNxN

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 9, 9, generator=g)
    same = ConvResNxN(4, 4, 1)
    assert torch.equal(same(x), x)
    wider = ConvResNxN(4, 6, 3, 2)
    want = torch.cat([torch.nn.functional.avg_pool2d(x, 3, 2), torch.zeros(2, 2, 4, 4)], dim=1)
    assert torch.allclose(wider(x), want, atol=1e-6)
    narrower = ConvResNxN(4, 3, 3)
    assert torch.allclose(narrower(x), narrower.shortcut_conv(x), atol=1e-6)
    for unit in (same, wider, narrower):
        assert bool((unit.conv2.weight == 0).all())
        fan_in = unit.conv1.weight[0].numel()  # default conv init: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
        w = unit.conv1.weight.detach()
        assert float(w.abs().max()) <= fan_in ** -0.5 and float(w.std()) > 0.4 * fan_in ** -0.5


def test_whole_encoder_starts_as_its_shortcuts():
    """With zero-initialised residual branches, the 7x7 map of the 32 px encoder is the stem output average-pooled
    twice (k4 s2, then k2 s2), with the extra channels zero."""
    torch.manual_seed(0)
    enc = AmdimEncoder(32, ndf=6, n_rkhs=32, n_depth=2)
    x = torch.randn(3, 3, 32, 32)
    stem = torch.relu(enc.to7[0][0](x))
    want = torch.nn.functional.avg_pool2d(torch.nn.functional.avg_pool2d(stem, 4, 2), 2, 2)
    h7 = enc.to7(x)
    assert torch.allclose(h7[:, :6], want, atol=1e-6)
    assert bool((h7[:, 6:] == 0).all())


def test_local_heads_start_near_identity():
    from tvdim.models.blocks import FakeRKHSConvNet

    head = FakeRKHSConvNet(5, 8)
    w = head.shortcut.weight.detach()[:, :, 0, 0]
    assert torch.equal(w[torch.arange(5), torch.arange(5)], torch.ones(5))
    off = w.clone()
    off[torch.arange(5), torch.arange(5)] = 0.0
    assert float(off.abs().max()) <= 0.01 and float(off.abs().max()) > 0.0
    assert bool((head.conv2.weight == 0).all())
    head.eval()  # BN at its initial statistics: identity
    x = torch.randn(2, 5, 3, 3)
    out = head(x)
    scale = (1 + head.bn_out.eps) ** -0.5
    assert torch.allclose(out, head.shortcut(x) * scale, atol=1e-5)
    assert torch.allclose(out[:, :5], (x + (x.unsqueeze(1) * off[:5, :, None, None]).sum(2)
                                       + head.shortcut.bias[:5, None, None]) * scale, atol=1e-5)
    narrow = FakeRKHSConvNet(8, 5)  # narrower: no identity possible, the shortcut keeps the default init
    assert float(narrow.shortcut.weight.detach().abs().max()) < 1.0
