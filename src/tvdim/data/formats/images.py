"""Safe image decoding and caption cleaning: the only place readers turn bytes into images / captions.

:func:`decode_image` never raises for one bad file; it returns a :class:`BadSample` whose ``reason`` says
what was wrong (missing, zero bytes, not an image, truncated, decompression bomb, unsupported mode).

Caption policy (:func:`clean_caption`):
* bytes are decoded as UTF-8; non-UTF-8 bytes are decoded with ``errors="replace"`` (bad bytes become
  U+FFFD) rather than dropping the caption — a caption with a few mangled characters is still useful;
* whitespace runs (incl. newlines / tabs) collapse to one space, the result is stripped;
* empty / whitespace-only captions are dropped (``None``);
* captions longer than :data:`MAX_CAPTION_CHARS` are cut at the last space before the limit.
"""
from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterable, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ...errors import DataError
from ..sample import BadSample

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
MAX_CAPTION_CHARS = 1000

ImageSource = Union[bytes, bytearray, memoryview, str, os.PathLike]
_PIL_LIMIT = threading.Lock()
log = logging.getLogger("tvdim.data")


def check_image_folder(path_of: "Callable[[int], Path | None]", n: int, where: str, hint: str) -> None:
    """:class:`DataError` when none of 20 images spread over items ``0..n-1`` exists (``path_of(i)``: the image
    file of item i, None when it has none): the image folder is wrong, which would otherwise show up as every
    sample being bad. ``where``: the folder looked in; ``hint``: how to set it."""
    probe = [p for p in (path_of(i) for i in range(0, n, max(1, n // 20))) if p is not None][:20]
    if probe and not any(p.is_file() for p in probe):
        raise DataError(f"none of {len(probe)} images checked exists under {where} (e.g. {probe[0]}); {hint}")


def count_outside_root(paths: Iterable[Path], root: str | Path, name: str) -> int:
    """How many of ``paths`` lie outside ``root`` once ``..`` and symlinks are resolved (absolute paths elsewhere,
    ``../x.jpg``, a symlink out of the folder); they are still read, and one warning names the table ``name``.
    Folders are resolved once each, files only when they are symlinks."""
    base = os.path.realpath(root)
    parents: dict[str, str] = {}
    n = total = 0
    first = ""
    for p in paths:
        total += 1
        text = os.fspath(p)
        folder = os.path.dirname(text)
        if folder not in parents:
            parents[folder] = os.path.realpath(folder)
        real = os.path.realpath(text) if os.path.islink(text) else os.path.join(parents[folder],
                                                                               os.path.basename(text))
        if os.path.commonpath([base, real]) != base:
            n += 1
            first = first or text
    if n:
        log.warning("%d of %d image paths in %s lie outside the image folder %s (after '..' and symlinks), e.g. %s; "
                    "they are read anyway", n, total, name, root, first)
    return n


def _open(fp: "io.IOBase | str") -> Image.Image:
    """``Image.open`` without PIL's own pixel limit: the caller applies ``max_image_pixels`` to the header, so
    the limit and its message are tvdim's (PIL's global limit would also block a larger configured one)."""
    with _PIL_LIMIT:
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(fp)
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (alpha composited on white, 16-bit / float scaled to 0..255)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        if mode == "F" and hi <= 1.0:
            scale = 255.0
        elif hi > 255.0:
            scale = 255.0 / 65535.0 if hi <= 65535.0 else 255.0 / hi
        else:
            scale = 1.0
        arr8 = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def decode_image(src: ImageSource, key: str, max_pixels: int = 89_478_485,
                 draft_size: int | None = None) -> Image.Image | BadSample:
    """Decode ``src`` (encoded bytes or a file path) to an RGB image, or a :class:`BadSample` saying why not.

    Args:
        src: encoded image bytes, or a path to an image file.
        key: sample id used in the returned :class:`BadSample`.
        max_pixels: images with more pixels (width*height, read from the header before decoding) are
            rejected as decompression bombs.
        draft_size: when given, JPEGs are decoded with ``draft("RGB", (s, s))`` (DCT scaling: decodes at the
            smallest power-of-two reduction that keeps both sides >= ``s``), which is much faster.
    """
    try:
        if isinstance(src, (bytes, bytearray, memoryview)):
            if len(src) == 0:
                return BadSample(key, "zero-byte image")
            fp: io.IOBase | str = io.BytesIO(bytes(src))
        else:
            path = Path(src)
            if not path.is_file():
                return BadSample(key, f"missing image file {path}")
            if path.stat().st_size == 0:
                return BadSample(key, f"zero-byte image file {path}")
            fp = str(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open(fp)
            w, h = img.size
            if w * h > max_pixels:
                return BadSample(key, f"decompression bomb: {w}x{h}={w * h} pixels > max_image_pixels={max_pixels}")
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # a plugin's own check (e.g. frames)
        return BadSample(key, f"decompression bomb: more pixels than max_image_pixels={max_pixels} allows")
    except UnidentifiedImageError:
        return BadSample(key, "not an image (PIL cannot identify the file)")
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, MemoryError) as exc:
        text = str(exc)
        what = "truncated image" if "truncated" in text or isinstance(exc, EOFError) else "corrupt image"
        return BadSample(key, f"{what}: {type(exc).__name__}: {text}")


def decode_text(data: bytes | str) -> str:
    """Bytes -> str as UTF-8 (BOM dropped); undecodable bytes become U+FFFD instead of failing."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace")


def clean_caption(text: bytes | str | None, max_chars: int = MAX_CAPTION_CHARS) -> str | None:
    """One caption -> normalised string, or ``None`` when nothing usable is left (see module docstring)."""
    if text is None:
        return None
    out = " ".join(decode_text(text).split())
    if not out:
        return None
    if len(out) > max_chars:
        cut = out[:max_chars]
        space = cut.rfind(" ")
        out = cut[:space] if space > max_chars // 2 else cut
    return out


def clean_captions(values: Iterable[bytes | str | None] | bytes | str | None,
                   max_chars: int = MAX_CAPTION_CHARS) -> list[str]:
    """Clean a caption or a list of captions; empty ones dropped, order kept."""
    if values is None:
        return []
    if isinstance(values, (str, bytes)):
        values = [values]
    out = []
    for v in values:
        c = clean_caption(v if isinstance(v, (str, bytes)) or v is None else str(v), max_chars)
        if c is not None:
            out.append(c)
    return out
