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
EVAL_RESIZE = {32: 32, 64: 70, 128: 146}  # AMDIM's test resize (shorter side), then a centre crop of the size
MIN_SIZE = 8


def eval_resize(size: int) -> int:
    """Shorter side of the test resize before the centre crop: AMDIM's values at 32 / 64 / 128 px; other sizes
    (timm backbones) the common crop ratio 0.875 (224 -> 256); below 32 px the size itself."""
    if size < MIN_SIZE:
        raise ConfigError(f"image size {size} is below {MIN_SIZE} px")
    return EVAL_RESIZE.get(size, size if size <= 32 else round(size / 0.875))


def hue_jitter(size: int) -> float:
    """Hue jitter of the colour augmentation: AMDIM's 0.2 up to 64 px, 0.1 above."""
    return 0.2 if size <= 64 else 0.1


def _jitter(hue: float) -> list:
    return [T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, hue)], p=0.8), T.RandomGrayscale(p=0.25)]


def train_transform(size: int) -> T.Compose:
    """One augmented view (without the flip, which the two views share): PIL -> normalised ``[3, size, size]``.
    AMDIM's rules: at 32 px (and below) resize, centre crop and a reflect-padded random crop; above, a random
    resized crop (scale 0.3-1, ratio 0.7-1.4); colour jitter with :func:`hue_jitter` and random grayscale."""
    if size < MIN_SIZE:
        raise ConfigError(f"no augmentation for image size {size}; use at least {MIN_SIZE} px")
    if size <= 32:
        geo = [T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
               T.RandomCrop(size, padding=4, padding_mode="reflect")]
    else:
        geo = [T.RandomResizedCrop(size, scale=(0.3, 1.0), ratio=(0.7, 1.4),
                                   interpolation=T.InterpolationMode.BICUBIC)]
    return T.Compose(geo + _jitter(hue_jitter(size)) + [T.ToTensor(), T.Normalize(MEAN, STD)])


def eval_transform(size: int) -> T.Compose:
    """Deterministic test transform: resize the shorter side to :func:`eval_resize` (32 -> 32, 64 -> 70,
    128 -> 146, 224 -> 256), centre crop, normalise."""
    return T.Compose([T.Resize(eval_resize(size), interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
                      T.ToTensor(), T.Normalize(MEAN, STD)])


class TwoViews:
    """Shared random horizontal flip, then two independent draws of ``view``: PIL -> ``(x1, x2)``."""

    def __init__(self, size: int) -> None:
        self.view = train_transform(size)

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        if random.random() < 0.5:  # torchvision's RandomX use torch's RNG; the flip uses Python's (both seeded)
            image = TF.hflip(image)
        return self.view(image), self.view(image)
