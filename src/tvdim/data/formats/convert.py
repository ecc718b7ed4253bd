"""Format conversion and caption corruption behind ``tvdim data convert | corrupt-captions``.

* :func:`to_wds`: any map-style source (table, COCO, Karpathy, ImageFolder, caption folder) -> WebDataset shards
  ``{prefix}-{000000}.tar`` with ``per_shard`` samples each and a ``sizes.json`` (merged with one already in the
  folder, so two splits converted into one folder with different ``--prefix`` keep both counts). Members:
  ``KEY.jpg`` (source JPEG bytes passed through) or ``KEY.png`` (anything else, re-encoded), ``KEY.json``
  (``{"captions": [every caption], "source_key": ...}``), ``KEY.txt`` (the first caption, for other WebDataset
  tools), ``KEY.cls`` when labelled. tvdim's default ``data.text_key=txt`` reads every caption from ``KEY.json``
  (see :class:`~tvdim.data.formats.wds.WdsDecoder`). Bad samples are skipped and counted.
* :func:`wds_export`: WebDataset -> ``images/`` + ``data.csv`` (one row per caption) or ``captions.json`` (COCO).
* :func:`corrupt_captions`: copy of wds shards / a CSV-TSV-JSONL table with captions swapped (``swap``), words
  shuffled (``shuffle-words``) or removed (``drop``) at rate ``p`` (seeded). Never overwrites the input; every
  output file is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any, Callable, Iterator

from ...errors import DataError
from ..sample import BadSample, Sample
from .images import IMAGE_EXTS, clean_captions, decode_image
from .wds import WdsDecoder, check_exists, checked_groups, expand_urls, known_sizes

MODES = ("swap", "shuffle-words", "drop")


class CaptionFolder:
    """Folder of images with same-name ``.txt`` captions (``a.jpg`` + ``a.txt``; one caption per line)."""

    def __init__(self, root: str | Path, max_pixels: int = 89_478_485) -> None:
        self.root = Path(root)
        self.items = [p for p in sorted(self.root.rglob("*")) if p.suffix.lower().lstrip(".") in IMAGE_EXTS
                      and p.with_suffix(".txt").is_file()]
        if not self.items:
            raise DataError(f"{root}: no images with same-name .txt captions")
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def image_path(self, i: int) -> Path:
        return self.items[i]

    def __getitem__(self, i: int) -> Sample | BadSample:
        p = self.items[i]
        key = p.relative_to(self.root).as_posix()
        caps = clean_captions(p.with_suffix(".txt").read_bytes().splitlines())
        if not caps:
            return BadSample(key, "no non-empty caption")
        img = decode_image(p, key, self.max_pixels)
        return img if isinstance(img, BadSample) else Sample(key, img, caps, {})


def source_path(ds: Any, i: int) -> Path | None:
    """Image file behind item ``i`` of a map-style reader, if it has one."""
    if hasattr(ds, "image_path"):
        return Path(ds.image_path(i))
    item = ds.items[i] if hasattr(ds, "items") else None
    if isinstance(item, tuple):
        return next((Path(x) for x in item if isinstance(x, Path)), None)
    return None


def safe_key(key: str, used: set[str]) -> str:
    """WebDataset keys may not contain dots or slashes; make one unique."""
    base = re.sub(r"[^A-Za-z0-9_-]", "_", key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key)
    out, n = base or "sample", 1
    while out in used:
        out, n = f"{base}_{n}", n + 1
    used.add(out)
    return out


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
    tf.addfile(ti, io.BytesIO(data))


def to_wds(ds: Any, out_dir: str | Path, prefix: str = "data", per_shard: int = 1000) -> dict[str, Any]:
    """Write map-style ``ds`` as shards in ``out_dir``; returns ``{"samples", "bad", "shards", "bad_reasons"}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob(f"{prefix}-*.tar")):
        raise DataError(f"{out} already holds {prefix}-*.tar shards; choose another folder or prefix")
    sizes: dict[str, int] = {}
    used: set[str] = set()
    bad: list[str] = []
    tf, tmp, name = None, None, ""

    def close() -> None:
        if tf is not None:
            tf.close()
            os.replace(tmp, out / name)

    for i in range(len(ds)):
        s = ds[i]
        if isinstance(s, BadSample):
            bad.append(f"{s.key}: {s.reason}")
            continue
        if tf is None or sizes[name] >= per_shard:
            close()
            name = f"{prefix}-{len(sizes):06d}.tar"
            tmp = out / f".{name}.tmp"
            tf, sizes[name] = tarfile.open(tmp, "w"), 0
        key = safe_key(s.key, used)
        src = source_path(ds, i)
        if src is not None and src.suffix.lower() in (".jpg", ".jpeg"):
            _add(tf, f"{key}.jpg", src.read_bytes())
        else:
            buf = io.BytesIO()
            s.image.save(buf, format="PNG")
            _add(tf, f"{key}.png", buf.getvalue())
        if s.captions:
            _add(tf, f"{key}.txt", s.captions[0].encode())
        _add(tf, f"{key}.json", json.dumps({"captions": s.captions, "source_key": s.key, **s.labels}).encode())
        if "label" in s.labels:
            _add(tf, f"{key}.cls", str(s.labels["label"]).encode())
        sizes[name] += 1
    close()
    if not sizes:
        raise DataError(f"no usable samples to convert; first reasons: {'; '.join(bad[:5])}")
    merged = _read_sizes(out / "sizes.json")
    merged.update(sizes)
    _atomic_write(out / "sizes.json", lambda tmp: tmp.write_text(json.dumps(merged, indent=1)))
    return {"samples": sum(sizes.values()), "bad": len(bad), "shards": len(sizes), "bad_reasons": bad[:20]}


def _read_sizes(path: Path) -> dict[str, int]:
    """An existing ``sizes.json`` (empty when absent); an unreadable one is an error, never overwritten."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} exists but is not valid JSON ({exc}); move it away to convert into this folder")
    if not isinstance(data, dict):
        raise DataError(f"{path} exists but is not a {{shard: count}} object; move it away to convert here")
    return data


def _wds_samples(pattern: str, text_key: str) -> Iterator[tuple[str, str, bytes, Sample | BadSample]]:
    """(key, image ext, raw image bytes, decoded sample) for every sample in the shards, in order."""
    dec = WdsDecoder(text_key, require_text=False)
    urls = expand_urls(pattern)
    check_exists(pattern, urls)
    sizes = known_sizes(urls)
    for url in urls:
        for g in checked_groups(url, dec, sizes.get(url)):
            if isinstance(g, BadSample):
                yield g.key, "", b"", g
                continue
            key, files = g
            s = dec(url, key, files)
            if isinstance(s, Sample) and not s.captions and text_key != "txt":
                s.captions = clean_captions([files["txt"]]) if "txt" in files else []  # fallback to .txt
            ext = next((e for e in ("jpg", "jpeg", "png", "webp") if e in files), "")
            yield key, ext, files.get(ext, b""), s


def wds_export(pattern: str, out_dir: str | Path, fmt: str = "csv", text_key: str = "json:captions") -> dict[str, Any]:
    """WebDataset -> ``out_dir/images/KEY.ext`` + ``data.csv`` (filepath,title[,label]) or ``captions.json`` (COCO)."""
    if fmt not in ("csv", "coco"):
        raise DataError(f"unknown export format '{fmt}'; valid: csv, coco")
    out = Path(out_dir)
    rows, images, anns, bad = [], [], [], []
    n_bad = 0
    for key, ext, raw, s in _wds_samples(pattern, text_key):
        if isinstance(s, BadSample):
            bad.append(f"{s.key}: {s.reason}")
            n_bad += s.count
            continue
        if not images:
            (out / "images").mkdir(parents=True, exist_ok=True)
        rel = f"images/{key.replace('/', '_')}.{ext}"
        (out / rel).write_bytes(raw)
        label = s.labels.get("label", "")
        rows.extend({"filepath": rel, "title": c, "label": label} for c in (s.captions or [""]))
        images.append({"id": len(images), "file_name": rel, **({"label": label} if label != "" else {})})
        anns.extend({"id": len(anns) + j, "image_id": images[-1]["id"], "caption": c} for j, c in enumerate(s.captions))
    if not images:
        raise DataError(f"no usable samples in {pattern}; first reasons: {'; '.join(bad[:5]) or '(none)'}")
    if fmt == "csv":
        cols = ["filepath", "title"] + (["label"] if any(r["label"] != "" for r in rows) else [])

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, cols, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        _atomic_write(out / "data.csv", write)
    else:
        _atomic_write(out / "captions.json", lambda tmp: tmp.write_text(json.dumps({"images": images, "annotations": anns})))
    return {"samples": len(images), "bad": n_bad, "bad_reasons": bad[:20],
            "file": str(out / ("data.csv" if fmt == "csv" else "captions.json"))}
