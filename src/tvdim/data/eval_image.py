"""The one evaluation image transform, shared by ``tvdim evaluate``, ``tvdim embed`` and an export's
``encode_images`` / ``preprocess``: decode at full resolution (never JPEG draft mode, whose DCT scaling changes the
pixels), convert to RGB as the readers do (alpha composited on white), resize the shorter side, centre crop, scale
to [0, 1] and normalise. Features of the same file are then the same whichever command computes them.
"""
from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from .formats.images import ImageSource, _to_rgb, decode_image
from .sample import BadSample
from .transforms import eval_transform


class EvalImage:
    """``EvalImage(size)(image)``: a PIL image, a file path or encoded bytes -> normalised ``[3, size, size]``."""

    def __init__(self, size: int, max_pixels: int = 89_478_485) -> None:
        self.size, self.max_pixels = size, max_pixels
        self.tf = eval_transform(size)

    def __call__(self, image: Image.Image | ImageSource) -> torch.Tensor:
        if not isinstance(image, Image.Image):
            image = load_eval_image(image, str(image)[:200] if not isinstance(image, (bytes, bytearray, memoryview))
                                    else "<bytes>", self.max_pixels)
            if isinstance(image, BadSample):
                raise ValueError(f"{image.key}: {image.reason}")
        return self.tf(to_rgb(image))


def load_eval_image(src: ImageSource, key: str, max_pixels: int = 89_478_485) -> Image.Image | BadSample:
    """Decode a file / bytes for evaluation: full resolution, RGB; a :class:`BadSample` when unusable."""
    return decode_image(src, key, max_pixels, draft_size=None)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB as the readers make it (a lazily opened file is loaded at full resolution first)."""
    image.load()
    return _to_rgb(image)


def eval_source(cfg: Any, split: str, image_size: int, **kwargs: Any) -> Any:
    """The evaluation reader of ``split``: images decoded at full resolution (no JPEG draft), so the features
    equal ``tvdim embed``'s and the export's. (The built-in synthetic data is rendered at ``image_size``.)"""
    from .sources import build_source

    return build_source(cfg, split, image_size if cfg.format == "synthetic" else None, **kwargs)


__all__ = ["EvalImage", "load_eval_image", "to_rgb", "eval_source"]
