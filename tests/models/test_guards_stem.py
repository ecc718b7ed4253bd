"""Guard on the 128 px stem (METHOD.md, "Image encoder": conv5 stride 2 with reflect padding 2, 128 -> 64): the
padding repeats the image's own border, so a constant image gives a constant map (zero padding would put a
dark frame round it), and the first conv equals a plain conv of the reflect-padded input."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tvdim.models.encoder import AmdimEncoder


def _first_conv():
    torch.manual_seed(0)
    enc = AmdimEncoder(128, ndf=8, n_rkhs=16, n_depth=1)
    convs = [m for m in enc.to7.modules() if isinstance(m, torch.nn.Conv2d)]
    return convs[0]


@torch.no_grad()
def test_128px_stem_border_of_a_constant_image_is_not_darkened():
    conv = _first_conv()
    assert conv.kernel_size == (5, 5) and conv.stride == (2, 2)
    y = conv(torch.full((1, 3, 128, 128), 0.7))
    assert y.shape == (1, 8, 64, 64)
    centre = y[:, :, 32:33, 32:33]
    assert torch.allclose(y, centre.expand_as(y), atol=1e-5), "the stem's padding changes the border"


@torch.no_grad()
def test_128px_stem_is_a_conv_of_the_reflect_padded_input():
    conv = _first_conv()
    x = torch.randn(2, 3, 128, 128)
    ref = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), conv.weight, conv.bias, stride=2)
    assert torch.allclose(conv(x), ref, atol=1e-5)
