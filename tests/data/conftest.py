"""Tiny generated fixtures for the data tests (PIL-made images, hand-written tars / tables / pickles).

Builders are exposed through the ``fx`` fixture (``fx.jpeg()``, ``fx.shard(path, samples)``, ...) so test
modules need no fragile ``from conftest import``.
"""
from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def jpeg(size: int = 16, color: tuple = (200, 30, 30)) -> bytes:
    return encode(Image.new("RGB", (size, size), color), "JPEG", quality=90)


def png(size: int = 16, color: tuple = (30, 200, 30)) -> bytes:
    return encode(Image.new("RGB", (size, size), color), "PNG")


def noisy_jpeg(size: int = 64, seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return encode(Image.fromarray(arr), "JPEG", quality=90)


def odd_images() -> dict[str, bytes]:
    """Decodable images in awkward modes, by name -> encoded bytes (file ext in the name)."""
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.info["transparency"] = 0
    rgba = Image.new("RGBA", (8, 8), (0, 0, 255, 0))
    i16 = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    return {"cmyk.jpg": encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"),
            "gray.png": encode(Image.new("L", (8, 8), 128), "PNG"),
            "palette.png": encode(pal, "PNG", transparency=0),
            "rgba.png": encode(rgba, "PNG"),
            "sixteen.png": encode(i16, "PNG")}


def broken_images() -> dict[str, bytes]:
    """Undecodable files with image extensions: name -> bytes."""
    good = noisy_jpeg(64)
    return {"truncated.jpg": good[: len(good) // 2], "zero.jpg": b"",
            "text.jpg": b"this is not an image at all\n", "html.png": b"<html><body>404</body></html>"}


def shard(path: Path, samples: list[tuple[str, dict[str, bytes | str]]]) -> Path:
    """Write a WebDataset tar: samples = [(key, {ext: bytes | str})]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for key, files in samples:
            for ext, data in files.items():
                raw = data.encode() if isinstance(data, str) else data
                ti = tarfile.TarInfo(f"{key}.{ext}")
                ti.size = len(raw)
                tf.addfile(ti, io.BytesIO(raw))
    return path


def caption_samples(n: int, prefix: str = "s", text_ext: str = "txt", start: int = 0) -> list:
    out = []
    for i in range(start, start + n):
        files: dict[str, bytes | str] = {"jpg": jpeg(16, (i * 7 % 255, 50, 90))}
        if text_ext == "txt":
            files["txt"] = f"caption number {i}"
        elif text_ext == "json":
            files["json"] = json.dumps({"captions": [f"caption number {i}", f"another caption {i}"]})
        files["cls"] = str(i % 3)
        out.append((f"{prefix}{i:05d}", files))
    return out


def image_table(root: Path, n: int = 6, fmt: str = "csv", sep: str = ",") -> Path:
    """Folder of n PNGs + a table (filepath, title, label)."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        (root / "img" / f"{i}.png").write_bytes(png(12, (i * 40 % 255, 10, 10)))
        rows.append({"filepath": f"img/{i}.png", "title": f"a red square {i}", "label": i % 2})
    path = root / f"table.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        lines = [sep.join(["filepath", "title", "label"])] + [sep.join(str(r[k]) for k in r) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    return path


def cifar10(root: Path, per_batch: int = 4) -> Path:
    """Fake ``cifar-10-batches-py`` in torchvision's layout (pickled dict batches + batches.meta)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        data = rng.integers(0, 255, (per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = [(b + j) % 10 for j in range(per_batch)]
        with open(folder / name, "wb") as fh:
            pickle.dump({"batch_label": name, "data": data, "labels": labels,
                         "filenames": [f"{name}_{j}.png" for j in range(per_batch)]}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"], "num_cases_per_batch": per_batch}, fh)
    return root


@pytest.fixture
def fx() -> SimpleNamespace:
    return SimpleNamespace(encode=encode, jpeg=jpeg, png=png, noisy_jpeg=noisy_jpeg, odd_images=odd_images,
                           broken_images=broken_images, shard=shard, caption_samples=caption_samples,
                           image_table=image_table, cifar10=cifar10)
