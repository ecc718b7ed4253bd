"""The image-encoder contract every backbone meets (the registry is :mod:`tvdim.models.backbones`)."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class EncoderOutput(NamedTuple):
    """``r1``: ``[B, n_rkhs]`` global feature (evaluated, exported); ``r5``: ``[B, n_rkhs, h, w]`` coarser and
    ``r7``: ``[B, n_rkhs, h', w']`` finer local feature maps (5x5 and 7x7 for AMDIM) for the multi-scale terms
    (None when the encoder's ``want_local`` is False and it skips them)."""

    r1: torch.Tensor
    r5: torch.Tensor | None
    r7: torch.Tensor | None


class ImageEncoder(nn.Module):
    """Base class of image encoders: ``image_size`` (input side, px), ``n_rkhs`` (feature size) and
    ``forward(x: [B, 3, S, S]) -> EncoderOutput``. Methods, evaluation, export, embed and score-pairs use only this."""

    image_size: int
    n_rkhs: int
    want_local: bool = True  # False: an encoder may skip r5 / r7 (returning None) when no loss reads them

    def forward(self, x: torch.Tensor) -> EncoderOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global feature r1 ``[B, n_rkhs]`` (the representation used for evaluation)."""
        return self.forward(x).r1


__all__ = ["EncoderOutput", "ImageEncoder"]
