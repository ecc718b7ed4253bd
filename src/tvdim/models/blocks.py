"""AMDIM's building blocks (Bachman et al. 2019, reference ``amdim-public``), written afresh.

As in the reference, the stem convolutions (no BN after them) and the shortcut convolution of a narrowing unit
have a bias, the others none; the second convolution of every residual branch starts at zero so that each block
starts as its (average-pooling) shortcut.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def maybe_bn(channels: int, use_bn: bool) -> nn.Module:
    """BatchNorm2d when ``use_bn`` else identity (AMDIM's ``MaybeBatchNorm2d``)."""
    return nn.BatchNorm2d(channels) if use_bn else nn.Identity()


class _AddedBiases:
    """Checkpoints written before the convolutions named in ``added_biases`` had a bias load with a zero bias,
    which is the function they were trained as."""

    added_biases: tuple[str, ...] = ()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        for name in self.added_biases:
            conv = getattr(self, name)
            key = f"{prefix}{name}.bias"
            if conv is not None and conv.bias is not None and key not in state_dict \
                    and f"{prefix}{name}.weight" in state_dict:
                state_dict[key] = torch.zeros_like(conv.bias)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[misc]


class ConvBNReLU(_AddedBiases, nn.Sequential):
    """Stem: conv(k, stride, pad) -> optional BN -> ReLU; the convolution has a bias when no BN follows."""

    added_biases = ("0",)

    def __init__(self, n_in: int, n_out: int, k: int, stride: int = 1, pad: int = 0, use_bn: bool = False,
                 pad_mode: str = "zeros") -> None:
        super().__init__(nn.Conv2d(n_in, n_out, k, stride, pad, bias=not use_bn, padding_mode=pad_mode),
                         maybe_bn(n_out, use_bn), nn.ReLU(inplace=True))


class ConvResNxN(_AddedBiases, nn.Module):
    """Residual unit: ``conv(k, s) -> BN? -> ReLU -> 1x1 conv (zero-init)`` plus a shortcut.

    Shortcut: ``avg_pool(k, s)`` with channels zero-padded up to ``n_out`` (or a k x k conv with a bias when
    ``n_out < n_in``).
    Input ``[B, n_in, H, W]`` -> output ``[B, n_out, (H + 2 pad - k) // s + 1, ...]``.
    """

    added_biases = ("shortcut_conv",)

    def __init__(self, n_in: int, n_out: int, k: int, stride: int = 1, pad: int = 0, use_bn: bool = False) -> None:
        super().__init__()
        self.n_in, self.n_out, self.k, self.stride, self.pad = n_in, n_out, k, stride, pad
        self.conv1 = nn.Conv2d(n_in, n_out, k, stride, pad, bias=False)
        self.bn1 = maybe_bn(n_out, use_bn)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(n_out, n_out, 1, 1, 0, bias=False)
        self.shortcut_conv = nn.Conv2d(n_in, n_out, k, stride, pad, bias=True) if n_out < n_in else None
        nn.init.kaiming_uniform_(self.conv1.weight, a=math.sqrt(5))
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.relu(self.bn1(self.conv1(x))))
        if self.shortcut_conv is not None:
            return h + self.shortcut_conv(x)
        short = F.avg_pool2d(x, self.k, self.stride, self.pad) if (self.k > 1 or self.stride > 1) else x
        if self.n_out > self.n_in:
            short = F.pad(short, (0, 0, 0, 0, 0, self.n_out - self.n_in))
        return h + short


class ConvResBlock(nn.Sequential):
    """One strided ``ConvResNxN(k, s)`` followed by ``depth - 1`` 1x1 ``ConvResNxN`` units."""

    def __init__(self, n_in: int, n_out: int, k: int, stride: int, depth: int, use_bn: bool = False) -> None:
        layers = [ConvResNxN(n_in, n_out, k, stride, 0, use_bn)]
        layers += [ConvResNxN(n_out, n_out, 1, 1, 0, use_bn) for _ in range(depth - 1)]
        super().__init__(*layers)


class FakeRKHSConvNet(nn.Module):
    """Head for local maps: ``BN(1x1 conv -> BN? -> ReLU -> 1x1 conv (zero-init) + near-identity 1x1 shortcut)``.

    ``[B, n_in, H, W]`` -> ``[B, n_out, H, W]``.
    """

    def __init__(self, n_in: int, n_out: int, use_bn: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, n_out, 1, bias=False)
        self.bn1 = maybe_bn(n_out, use_bn)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(n_out, n_out, 1, bias=False)
        self.shortcut = nn.Conv2d(n_in, n_out, 1, bias=True)
        self.bn_out = nn.BatchNorm2d(n_out)
        nn.init.zeros_(self.conv2.weight)
        if n_out >= n_in:
            with torch.no_grad():
                self.shortcut.weight.uniform_(-0.01, 0.01)
                idx = torch.arange(n_in)
                self.shortcut.weight[idx, idx, 0, 0] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_out(self.conv2(self.relu(self.bn1(self.conv1(x)))) + self.shortcut(x))
