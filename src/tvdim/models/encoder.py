"""AMDIM image encoder for 32, 64 and 128 px inputs, returning global (r1) and local (r5, r7) features."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import ConvBNReLU, ConvResBlock, ConvResNxN, FakeRKHSConvNet, maybe_bn
from .image_encoder import EncoderOutput, ImageEncoder

SIZES = (32, 64, 128)


class AmdimEncoder(ImageEncoder):
    """The AMDIM encoder (see METHOD.md, "Image encoder").

    Args:
        image_size: 32, 64 or 128 (the architecture depends on it; other sizes raise ``ConfigError``).
        ndf: base width; n_rkhs: feature size; n_depth: residual units per block; use_bn: BN inside blocks.
    Input ``[B, 3, image_size, image_size]`` (normalised RGB). Output :class:`EncoderOutput`.
    """

    def __init__(self, image_size: int = 32, ndf: int = 128, n_rkhs: int = 1024, n_depth: int = 3,
                 use_bn: bool = False) -> None:
        super().__init__()
        if image_size not in SIZES:
            raise ConfigError(f"model.image_size must be one of {SIZES}, got {image_size}")
        self.image_size, self.n_rkhs = image_size, n_rkhs
        d = n_depth
        if image_size == 32:
            c7 = ndf * 4
            layers = [ConvBNReLU(3, ndf, 3), ConvResNxN(ndf, ndf, 1, 1, 0, use_bn),
                      ConvResBlock(ndf, ndf * 2, 4, 2, d, use_bn), ConvResBlock(ndf * 2, c7, 2, 2, d, use_bn)]
        else:
            c7 = ndf * 8
            stem = [ConvBNReLU(3, ndf, 3)]
            if image_size == 128:  # as the reference: no BN in the stem, whatever use_bn says
                stem = [ConvBNReLU(3, ndf, 5, 2, 2, pad_mode="reflect"), ConvBNReLU(ndf, ndf, 3)]
            layers = stem + [ConvResBlock(ndf, ndf * 2, 4, 2, d, use_bn), ConvResBlock(ndf * 2, ndf * 4, 4, 2, d, use_bn),
                             ConvResBlock(ndf * 4, c7, 2, 2, d, use_bn)]
        self.to7 = nn.Sequential(*layers, maybe_bn(c7, use_bn))  # -> [B, c7, 7, 7]
        self.to5 = ConvResBlock(c7, c7, 3, 1, d, use_bn)  # -> 5x5
        self.to1 = nn.Sequential(ConvResBlock(c7, c7, 3, 1, d, use_bn), ConvResNxN(c7, n_rkhs, 3, 1, 0, use_bn),
                                 nn.BatchNorm2d(n_rkhs))  # 5 -> 3 -> 1
        self.rkhs5 = FakeRKHSConvNet(c7, n_rkhs, use_bn)
        self.rkhs7 = FakeRKHSConvNet(c7, n_rkhs, use_bn)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(f"encoder for {self.image_size}px expects [B, 3, {self.image_size}, {self.image_size}] "
                             f"images, got {list(x.shape)}; set model.image_size or resize the input")
        h7 = self.to7(x)
        h5 = self.to5(h7)
        r1 = self.to1(h5).flatten(1)
        return EncoderOutput(r1, self.rkhs5(h5), self.rkhs7(h7))
