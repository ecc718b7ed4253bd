"""AMDIM's two-view augmentation on a whole batch, on the training device (``data.augment=device``).

Data-loader workers only decode and resize each image to a fixed uint8 ``base`` square (:func:`base_transform`);
the training step then draws, per image, the same random choices as the per-image path of
:mod:`tvdim.data.transforms` and applies them to the batch at once:

* one horizontal flip per image, shared by its two views (p = 0.5);
* per view: the geometry (32 px: reflect-pad 4 + random 32 x 32 crop; 64 / 128 px: RandomResizedCrop with
  scale (0.3, 1), ratio (0.7, 1.4), torchvision's 10-try rule and centre-crop fallback), then with p = 0.8 a colour
  jitter (brightness, contrast, saturation 0.4, hue 0.2 / 0.1, applied in a random order per image, as
  torchvision's ColorJitter), grayscale with p = 0.25, and the normalisation.

The parameters are drawn on the CPU from a generator seeded by ``(seed, step)`` (:func:`step_seed`), so a resumed
run draws the same views without any saved state; the pixels are computed on the device. Colour operations follow
torchvision's tensor definitions (``adjust_brightness`` / ``contrast`` / ``saturation`` / ``hue``,
``rgb_to_grayscale``); the resized crop uses :func:`torchvision.ops.roi_align` (bilinear, averaging several samples
per output pixel when shrinking).

Differences from the per-image path: images are first centre-cropped to a square (64 / 128 px only: the crop
is drawn from the square, not the full non-square image), and resampling is bilinear on the base image instead of
PIL's bicubic on the original.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from torchvision import transforms as T
from torchvision.ops import roi_align

from ..errors import ConfigError
from .transforms import MEAN, MIN_SIZE, STD, hue_jitter

BASE = {32: 32, 64: 128, 128: 256}  # worker output side at AMDIM's sizes (see base_side)
JITTER, JITTER_P, GRAY_P, FLIP_P = 0.4, 0.8, 0.25, 0.5
SCALE, RATIO, PAD = (0.3, 1.0), (0.7, 1.4), 4
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


def base_side(size: int) -> int:
    """Side of the uint8 square the workers prepare: the size itself up to 32 px (pad-and-crop views), twice the
    size above, so that the smallest random-resized crop (scale 0.3) is about the model size (AMDIM's 64 -> 128,
    128 -> 256)."""
    if size < MIN_SIZE:
        raise ConfigError(f"no augmentation for image size {size}; use at least {MIN_SIZE} px")
    return size if size <= 32 else 2 * size


def base_transform(size: int) -> T.Compose:
    """Worker side: PIL -> uint8 ``[3, b, b]`` (shorter side resized to ``b = base_side(size)``, centre crop)."""
    b = base_side(size)
    return T.Compose([T.Resize(b, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(b), T.PILToTensor()])


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """Seed of the augmentation parameters of one training step on one rank."""
    digest = hashlib.blake2b(repr(("device-aug", seed, step, rank)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# ---- parameter sampling (CPU, a torch.Generator): the per-image path's distributions, vectorised ----------------

def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _randint(high: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One integer in ``[0, high)`` per entry of ``high`` (``high >= 1``)."""
    return (torch.rand(high.shape, generator=g, dtype=torch.float64) * high).floor().long().clamp(max=high - 1)


def sample_resized_crops(n: int, height: int, width: int, g: torch.Generator, scale: tuple[float, float] = SCALE,
                         ratio: tuple[float, float] = RATIO, tries: int = 10) -> torch.Tensor:
    """``[n, 4]`` long boxes ``(top, left, h, w)`` drawn like ``RandomResizedCrop.get_params``: up to ``tries``
    draws of area fraction ~ U(scale) and log aspect ~ U(log ratio), the first that fits; else the centre crop
    clipped to the ratio range."""
    area = height * width
    target = area * _uniform(n * tries, *scale, g).view(n, tries)
    aspect = torch.exp(_uniform(n * tries, math.log(ratio[0]), math.log(ratio[1]), g)).view(n, tries)
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(fits.any(1), fits.long().argmax(1), torch.full((n,), -1))
    rows = torch.arange(n)
    h, w = h[rows, first.clamp(min=0)], w[rows, first.clamp(min=0)]
    in_ratio = width / height  # fallback: the whole image, clipped to the aspect range
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    none = first < 0
    h, w = torch.where(none, fh, h), torch.where(none, fw, w)
    top, left = _randint(height - h + 1, g), _randint(width - w + 1, g)
    top = torch.where(none, (height - h) // 2, top)
    left = torch.where(none, (width - w) // 2, left)
    return torch.stack([top, left, h, w], 1)


@dataclass
class JitterParams:
    """Per image: ``on`` [n] bool (jitter applied), ``factors`` [n, 4] (brightness, contrast, saturation, hue),
    ``order`` [n, 4] (a permutation of 0..3: the order the four operations run in), ``gray`` [n] bool."""

    on: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    gray: torch.Tensor


def sample_jitter(n: int, hue: float, g: torch.Generator) -> JitterParams:
    """``RandomApply([ColorJitter(0.4, 0.4, 0.4, hue)], p=0.8)`` then ``RandomGrayscale(p=0.25)``, per image."""
    on = torch.rand(n, generator=g) < JITTER_P
    factors = torch.stack([_uniform(n, 1 - JITTER, 1 + JITTER, g) for _ in range(3)] + [_uniform(n, -hue, hue, g)],
                          1).float()
    order = torch.argsort(torch.rand(n, 4, generator=g), dim=1)
    gray = torch.rand(n, generator=g) < GRAY_P
    return JitterParams(on, factors, order, gray)


# ---- pixel operations on a batch [n, 3, H, W] of floats in [0, 1], one factor per image ------------------------

def _per_image(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """``[n, 1, H, W]`` luma with torchvision's weights."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    r = _per_image(ratio, x)
    return (r * x + (1 - r) * other).clamp(0, 1)


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), f)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), f)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x), f)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """``[n, 3, H, W]`` RGB in [0, 1] -> HSV in [0, 1] (torchvision's definition: ties go to red, then green)."""
    maxc, arg = x.max(1)  # the first maximal channel on ties, as torchvision's r / g / b branches
    cr = maxc - x.min(1).values
    r, g, b = x.unbind(1)
    diff = torch.stack([g - b, b - r, r - g], 1).gather(1, arg.unsqueeze(1)).squeeze(1)
    flat = cr == 0
    h = torch.where(flat, torch.zeros_like(cr), diff / torch.where(flat, torch.ones_like(cr), cr) + 2.0 * arg)
    s = cr / torch.where(flat, torch.ones_like(maxc), maxc)
    return torch.stack([torch.fmod(h / 6.0 + 1.0, 1.0), s, maxc], 1)


_HSV_N = (5.0, 3.0, 1.0)  # channel offsets of the closed-form HSV -> RGB (R, G, B)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1] -> RGB: ``c = v - v s clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h) mod 6`` (the same
    values as the six-sector formula)."""
    h, s, v = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    k = torch.remainder(torch.tensor(_HSV_N, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) + 6.0 * h, 6.0)
    return (v - v * s * torch.minimum(k, 4.0 - k).clamp(0, 1)).clamp(0, 1)


def adjust_hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    hsv = rgb_to_hsv(x)
    h = torch.fmod(hsv[:, 0] + _per_image(f, x)[:, 0], 1.0)
    h = torch.where(h < 0, h + 1.0, h)
    return hsv_to_rgb(torch.stack([h, hsv[:, 1], hsv[:, 2]], 1))


_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: torch.Tensor, p: JitterParams) -> torch.Tensor:
    """Jitter (where ``p.on``) in each image's own order, then grayscale (where ``p.gray``)."""
    dev = x.device
    on, factors, order = p.on.to(dev), p.factors.to(dev), p.order.to(dev)
    for pos in range(4):
        for op_index, op in enumerate(_OPS):
            sel = torch.nonzero(on & (order[:, pos] == op_index)).squeeze(1)
            if sel.numel():
                x = x.index_copy(0, sel, op(x.index_select(0, sel), factors.index_select(0, sel)[:, op_index]))
    gray = p.gray.to(dev)
    return torch.where(gray.view(-1, 1, 1, 1), grayscale(x).expand_as(x), x)


# ---- geometry -----------------------------------------------------------------------------------------------------

def pad_crop(x: torch.Tensor, offsets: torch.Tensor, size: int, pad: int = PAD) -> torch.Tensor:
    """Reflect-pad by ``pad`` and cut ``size x size`` at ``offsets`` ``[n, 2]`` (top, left) of the padded image."""
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    offsets = offsets.to(x.device)
    ar = torch.arange(size, device=x.device)
    rows = (offsets[:, 0:1] + ar)[:, :, None]  # [n, size, 1]
    cols = (offsets[:, 1:2] + ar)[:, None, :]  # [n, 1, size]
    n = torch.arange(x.shape[0], device=x.device)[:, None, None]
    return xp.permute(0, 2, 3, 1)[n, rows, cols].permute(0, 3, 1, 2)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop ``boxes`` ``[n, 4]`` (top, left, h, w) of each image and resize to ``size`` (bilinear, averaging
    ``ceil(box / size)`` samples per output pixel and axis)."""
    top, left, h, w = boxes.to(x.device, x.dtype).unbind(1)
    idx = torch.arange(x.shape[0], device=x.device, dtype=x.dtype)
    rois = torch.stack([idx, left, top, left + w, top + h], 1)
    return roi_align(x, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


@dataclass
class ViewParams:
    """One view's draws for n images: ``geometry`` ``[n, 2]`` crop offsets (32 px) or ``[n, 4]`` boxes (top,
    left, h, w), and the colour draws."""

    geometry: torch.Tensor
    jitter: JitterParams


@dataclass
class PairParams:
    """``flip`` [n] bool (shared by the two views) and each view's draws."""

    flip: torch.Tensor
    view1: ViewParams
    view2: ViewParams


class DeviceViews:
    """``(uint8 base batch [n, 3, b, b] on the device, seed) -> (x1, x2)``: normalised float views.
    :meth:`draw` (CPU) and :meth:`apply` (device) are the two halves of a call."""

    def __init__(self, size: int) -> None:
        base_side(size)  # checks the size
        self.size, self.hue = size, hue_jitter(size)

    def _draw_view(self, n: int, height: int, width: int, g: torch.Generator) -> ViewParams:
        if self.size <= 32:
            high = torch.tensor([height + 2 * PAD - self.size + 1, width + 2 * PAD - self.size + 1])
            geometry = _randint(high.expand(n, 2), g)
        else:
            geometry = sample_resized_crops(n, height, width, g)
        return ViewParams(geometry, sample_jitter(n, self.hue, g))

    def draw(self, n: int, height: int, width: int, seed: int) -> PairParams:
        g = torch.Generator().manual_seed(seed)
        flip = torch.rand(n, generator=g) < FLIP_P
        return PairParams(flip, self._draw_view(n, height, width, g), self._draw_view(n, height, width, g))

    def _view(self, x: torch.Tensor, p: ViewParams) -> torch.Tensor:
        if self.size <= 32:
            v = pad_crop(x, p.geometry, self.size)
        else:
            v = resized_crop(x, p.geometry, self.size)
        v = color_jitter(v, p.jitter)
        mean = torch.tensor(MEAN, device=x.device, dtype=v.dtype).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=x.device, dtype=v.dtype).view(1, 3, 1, 1)
        return (v - mean) / std

    def apply(self, images: torch.Tensor, p: PairParams) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.float().div_(255)
        x = torch.where(p.flip.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)
        return self._view(x, p.view1), self._view(x, p.view2)

    def __call__(self, images: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a uint8 batch [n, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        n, _, height, width = images.shape
        return self.apply(images, self.draw(n, height, width, seed))
