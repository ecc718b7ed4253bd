"""AMDIM's augmentations (METHOD.md, "Augmentation") and the two-view pair transform."""
from __future__ import annotations

import random

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from ..errors import ConfigError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EVAL_RESIZE = {32: 32, 64: 70, 128: 146}  # test transform: shorter side resized to this, then centre crop


def _jitter(hue: float) -> list:
    return [T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, hue)], p=0.8), T.RandomGrayscale(p=0.25)]


def train_transform(size: int) -> T.Compose:
    """One augmented view (without the flip, which the two views share): PIL -> normalised ``[3, size, size]``."""
    if size == 32:
        geo = [T.Resize(32, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32),
               T.RandomCrop(32, padding=4, padding_mode="reflect")]
        hue = 0.2
    elif size in (64, 128):
        geo = [T.RandomResizedCrop(size, scale=(0.3, 1.0), ratio=(0.7, 1.4),
                                   interpolation=T.InterpolationMode.BICUBIC)]
        hue = 0.2 if size == 64 else 0.1
    else:
        raise ConfigError(f"no AMDIM augmentation for image size {size}; use 32, 64 or 128")
    return T.Compose(geo + _jitter(hue) + [T.ToTensor(), T.Normalize(MEAN, STD)])


def eval_transform(size: int) -> T.Compose:
    """Deterministic test transform: resize (32 -> 32, 64 -> 70, 128 -> 146), centre crop, normalise."""
    resize = EVAL_RESIZE.get(size)
    if resize is None:
        raise ConfigError(f"no evaluation transform for image size {size}; use 32, 64 or 128")
    return T.Compose([T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size), T.ToTensor(),
                      T.Normalize(MEAN, STD)])


class TwoViews:
    """Shared random horizontal flip, then two independent draws of ``view``: PIL -> ``(x1, x2)``."""

    def __init__(self, size: int) -> None:
        self.view = train_transform(size)

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        if random.random() < 0.5:  # torchvision's RandomX use torch's RNG; the flip uses Python's (both seeded)
            image = TF.hflip(image)
        return self.view(image), self.view(image)
