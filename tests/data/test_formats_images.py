"""decode_image / caption cleaning: every awkward or broken input."""
import struct
import zlib

import pytest
from PIL import Image

from tvdim.data.formats.images import MAX_CAPTION_CHARS, clean_caption, clean_captions, decode_image, decode_text
from tvdim.data.sample import BadSample


def test_good_jpeg_and_png(fx):
    for data in (fx.jpeg(), fx.png()):
        img = decode_image(data, "k")
        assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (16, 16)


@pytest.mark.parametrize("name", ["cmyk.jpg", "gray.png", "palette.png", "rgba.png", "sixteen.png"])
def test_odd_modes_become_rgb(fx, name):
    img = decode_image(fx.odd_images()[name], name)
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    px = img.getpixel((0, 0))
    if name == "rgba.png" or name == "palette.png":  # fully transparent -> white background
        assert px == (255, 255, 255)
    if name == "sixteen.png":  # 65535 scaled to 255, not clipped garbage
        assert px == (255, 255, 255)
    if name == "gray.png":
        assert px == (128, 128, 128)
    if name == "cmyk.jpg":  # C=0 M=Y=255 K=0 is red
        assert px[0] > 150 and px[1] < 80 and px[2] < 80


@pytest.mark.parametrize("name,word", [("truncated.jpg", "truncated"), ("zero.jpg", "zero-byte"),
                                       ("text.jpg", "not an image"), ("html.png", "not an image")])
def test_broken_bytes_and_files(fx, tmp_path, name, word):
    data = fx.broken_images()[name]
    bad = decode_image(data, name)
    assert isinstance(bad, BadSample) and bad.key == name and word in bad.reason
    (tmp_path / name).write_bytes(data)
    bad = decode_image(tmp_path / name, name)
    assert isinstance(bad, BadSample) and word in bad.reason


def test_missing_file(tmp_path):
    bad = decode_image(tmp_path / "nope.jpg", "nope")
    assert isinstance(bad, BadSample) and "missing" in bad.reason


def test_decompression_bomb_with_tiny_limit(fx):
    bad = decode_image(fx.jpeg(16), "bomb", max_pixels=100)
    assert isinstance(bad, BadSample) and "decompression bomb" in bad.reason and "256" in bad.reason
    assert isinstance(decode_image(fx.jpeg(16), "ok", max_pixels=256), Image.Image)


def _huge_png(width: int, height: int) -> bytes:
    """A PNG header claiming width x height pixels (no pixel data needed: the check reads the header only)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_bomb_message_quotes_max_image_pixels_not_pils_limit():
    """PIL's own check fires first above its limit (warning) or twice it (error); the limit is tvdim's."""
    for side in (10_000, 20_000):  # 100 M pixels (PIL warns), 400 M pixels (PIL raises)
        bad = decode_image(_huge_png(side, side), "bomb")
        assert isinstance(bad, BadSample)
        assert bad.reason == f"decompression bomb: {side}x{side}={side * side} pixels > max_image_pixels=89478485"


def test_pil_global_limit_does_not_override_max_image_pixels(fx, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # someone else's setting in the same process
    assert isinstance(decode_image(fx.png(16), "ok", max_pixels=256), Image.Image)
    bad = decode_image(fx.png(16), "bomb", max_pixels=100)
    assert isinstance(bad, BadSample) and "256 pixels > max_image_pixels=100" in bad.reason
    assert Image.MAX_IMAGE_PIXELS == 50  # restored


def test_jpeg_draft_reduces_decode_size(fx):
    data = fx.noisy_jpeg(256)
    assert decode_image(data, "k").size == (256, 256)
    small = decode_image(data, "k", draft_size=64)
    assert small.size == (64, 64) and small.mode == "RGB"
    assert decode_image(fx.png(32), "k", draft_size=8).size == (32, 32)  # draft only affects JPEG


def test_captions_cleaning():
    assert clean_caption("  a  dog\n\truns ") == "a dog runs"
    assert clean_caption("") is None and clean_caption(" \n\t ") is None and clean_caption(None) is None
    assert clean_caption("caf\xe9".encode("latin-1")) == "caf\ufffd"  # non-UTF-8 -> replacement char
    assert clean_caption("caf\u00e9".encode()) == "caf\u00e9"
    long = "word " * 1000
    out = clean_caption(long)
    assert len(out) <= MAX_CAPTION_CHARS and out.endswith("word")
    assert clean_captions(["a", " ", None, b"b", ""]) == ["a", "b"]
    assert clean_captions("single") == ["single"] and clean_captions(None) == []
    assert decode_text(b"\xef\xbb\xbfbom") == "bom"


def test_draft_decoded_base_square_is_within_tolerance_of_the_full_decode():
    """Training reads decode JPEGs in draft mode at the target size; the uint8 base square the augmentation starts
    from stays within a few levels of the one from a full decode (benchmarks/decode_compare.py measures it on
    RSICD: mean 1.4 levels at 32 px)."""
    import io

    import numpy as np
    import torch

    from tvdim.data.device_aug import base_transform

    yy, xx = np.mgrid[0:256, 0:256]
    arr = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)  # smooth, like a photo at this scale
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=92)
    tf = base_transform(32)
    full = tf(decode_image(buf.getvalue(), "k")).int()
    draft = tf(decode_image(buf.getvalue(), "k", draft_size=32)).int()
    diff = (full - draft).abs().float()
    assert full.shape == draft.shape == torch.Size([3, 32, 32])
    assert diff.mean() < 2.0 and diff.max() <= 16
    assert not torch.equal(full, draft)  # draft mode did decode differently (at 1/4 scale)
