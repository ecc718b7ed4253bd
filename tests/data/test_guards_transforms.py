"""Guards on the CPU augmentations: the two views are two independent draws, and the test transform resizes with
bicubic interpolation at 64 / 128 px (where its resize is not the identity), as METHOD.md's "Augmentation" says."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from tvdim.data.transforms import MEAN, STD, TwoViews, eval_transform


def _noise_image(w: int, h: int, seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


@pytest.mark.parametrize("size", [32, 64])
def test_two_views_are_independent_draws(size):
    """Each call draws the view transform twice: the two views of one image differ (for every seed tried)."""
    img = _noise_image(size + 8, size + 8)
    views = TwoViews(size)
    for seed in range(4):
        random.seed(seed)
        torch.manual_seed(seed)
        x1, x2 = views(img)
        assert x1.shape == x2.shape == (3, size, size)
        assert not torch.equal(x1, x2), f"seed {seed}: both views are the same draw"
        assert (x1 - x2).abs().mean() > 1e-3


def _reference(img: Image.Image, short: int, crop: int, filt: int = Image.BICUBIC) -> torch.Tensor:
    """PIL resize (``filt``) of the shorter side to ``short``, centre crop ``crop`` (offsets even here), normalise."""
    w, h = img.size
    if w <= h:
        nw, nh = short, int(short * h / w)
    else:
        nw, nh = int(short * w / h), short
    res = img.resize((nw, nh), filt)
    assert (nw - crop) % 2 == 0 and (nh - crop) % 2 == 0  # no rounding question in the crop offsets
    left, top = (nw - crop) // 2, (nh - crop) // 2
    arr = np.asarray(res.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr).permute(2, 0, 1)
    return (t - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


@pytest.mark.parametrize("size,short,wh", [(64, 70, (100, 120)), (128, 146, (200, 250))])
def test_eval_transform_resizes_bicubic(size, short, wh):
    """64 px: resize 70, crop 64; 128 px: resize 146, crop 128 -- with bicubic interpolation (a bilinear resize of
    a noise image is far from the bicubic one)."""
    img = _noise_image(*wh, seed=size)
    out = eval_transform(size)(img)
    ref = _reference(img, short, size)
    assert out.shape == ref.shape == (3, size, size)
    assert torch.allclose(out, ref, atol=1e-4), float((out - ref).abs().max())
    # the check tells the filters apart: the bilinear reference is far from the output
    assert not torch.allclose(out, _reference(img, short, size, Image.BILINEAR), atol=1e-2)
