"""``tvdim embed``: image or caption features of a whole dataset, written to ``.npy`` + keys (or ``.parquet``).

Inputs (``kind``, guessed from the path unless given):

* images: ``folder`` (every image file below it, key = relative path), ``csv`` / ``tsv`` / ``jsonl`` (a table as
  in ``data.format``: ``data.root``, ``data.image_key``, ``data.separator``; key = the image path) or ``wds``
  (shards, brace notation; key = the sample key);
* captions (``text=True``): ``lines`` (a plain text file, one caption per line, key = line number), a table (the
  ``data.caption_key`` column, key = ``IMAGE#n`` for its n-th caption) or shards (``data.text_key``, key =
  ``KEY#n``).

Unusable inputs (unreadable images, empty captions, broken shards) are skipped and counted with the same policy
as training (:class:`~tvdim.data.quality.SkipTracker`, ``data.max_bad_fraction``); the keys file lists only the
rows that were embedded, in the same order as the features.
"""
from __future__ import annotations

import json
import sys
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .config import DataConfig
from .data.formats.images import IMAGE_EXTS, clean_captions
from .data.quality import SkipTracker
from .data.sample import BadSample, Sample
from .data.eval_image import EvalImage, load_eval_image
from .errors import ConfigError, DataError

log = logging.getLogger("tvdim.embed")

EMBED_KINDS = ("folder", "lines")  # embed's own inputs: every image below a folder; a text file, one caption a line
OUT_SUFFIXES = (".npy", ".parquet")


def data_kinds() -> tuple[str, ...]:
    """Every ``data.format`` that reads files (what ``tvdim pretrain`` reads), synthetic data excepted."""
    from .data.formats.registry import FORMATS

    return tuple(f for f in FORMATS if f != "synthetic")


def guess_kind(path: str, text: bool = False) -> str:
    """What ``path`` is: a ``data.format`` (guessed as ``tvdim data`` guesses it: a ``.json`` is COCO or Karpathy,
    never plain text), ``folder`` (images) or ``lines`` (a ``.txt`` or extension-less text file, with ``text``)."""
    from .data.tools import guess_format

    p = Path(path)
    is_shards = "{" in path or "::" in path
    if not is_shards and not p.exists():
        raise DataError(f"no such file or folder: {p}")
    if text and p.is_file() and p.suffix.lower() in ("", ".txt"):
        return "lines"
    if not text and p.is_dir() and not is_shards:
        kind = guess_format(path)
        return "wds" if kind == "wds" else "folder"  # a folder: every image below it (class folders or not)
    if p.is_file() and p.suffix.lower() not in (".csv", ".tsv", ".jsonl", ".json", ".tar", ".gz"):
        what = "a plain text file (.txt), a table (.csv/.tsv/.jsonl), a COCO / Karpathy .json or shards (.tar)" \
            if text else "a folder of images, a table (.csv/.tsv/.jsonl), a COCO / Karpathy .json or shards (.tar)"
        raise ConfigError(f"cannot tell what {p} is; give {what}, or --format")
    return guess_format(path)


def _reader(path: str, kind: str, data: DataConfig, split: str) -> Any:
    """The data layer's reader of ``kind`` for ``path`` (as ``tvdim pretrain`` reads it: same image-folder rule and
    hint, same bad-input accounting), full-resolution images, captions not required."""
    import dataclasses

    from .data.eval_image import eval_source

    if kind not in data_kinds():
        raise ConfigError(f"cannot embed --format {kind}; valid: {', '.join(EMBED_KINDS + data_kinds())}")
    cfg = dataclasses.replace(data, format=kind, path=path, shuffle_buffer=0, resampled=False)
    return eval_source(cfg, split, 32, require_text=False)


class ImageFiles(Dataset):
    """Every image file below ``root`` (sorted); ``ds[i]`` -> Sample (key = relative path) | BadSample."""

    def __init__(self, root: str | Path, max_pixels: int = 89_478_485) -> None:
        self.root = Path(root)
        self.files = [p for p in sorted(self.root.rglob("*"))
                      if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTS]
        if not self.files:
            raise DataError(f"no image files under {self.root} (extensions: {', '.join(IMAGE_EXTS)})")
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Sample | BadSample:
        key = self.files[i].relative_to(self.root).as_posix()
        img = load_eval_image(self.files[i], key, self.max_pixels)
        return img if isinstance(img, BadSample) else Sample(key, img)


class _Transformed(Dataset):
    """``source[i]`` -> ``(key, [3, S, S] tensor)`` or the BadSample it returned."""

    def __init__(self, source: Any, image_size: int) -> None:
        self.source, self.tf = source, EvalImage(image_size)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor] | BadSample:
        s = self.source[i]
        return s if isinstance(s, BadSample) else (s.key, self.tf(s.image))


def image_source(path: str, kind: str, data: DataConfig, split: str = "eval_train") -> Any:
    """Map-style reader of ``Sample`` | ``BadSample`` for image embedding (captions not needed). ``split``: the
    entries of a file that holds several (Karpathy ``test``); ``eval_train`` = the whole of ``path``."""
    if kind == "folder":
        return ImageFiles(path, data.max_image_pixels)
    if kind == "wds":  # by index: the shards in order, not a shuffled stream
        from .data.formats.wds import WdsDecoder
        from .data.formats.wds_eval import WdsIndexed

        return WdsIndexed(path, WdsDecoder(data.text_key, "", require_text=False, max_pixels=data.max_image_pixels))
    if kind == "lines":
        raise ConfigError(f"{path}: --format lines is text; embed its captions with --text")
    return _reader(path, kind, data, split)


def iter_captions(path: str, kind: str, data: DataConfig, split: str = "eval_train"
                  ) -> Iterator[tuple[str, str] | BadSample]:
    """``(key, caption)`` for every caption of ``path`` (key ``KEY#n`` for a sample's n-th caption, the line number
    for ``lines``); empty ones and broken shards as BadSample. Images are not decoded."""
    if kind == "lines":
        p = Path(path)
        if not p.is_file():
            raise DataError(f"text file not found: {p}")
        for n, raw in enumerate(p.read_bytes().splitlines(), 1):
            caps = clean_captions(raw)
            yield (str(n), caps[0]) if caps else BadSample(f"{p.name}:{n}", "empty caption")
    elif kind == "wds":
        from .data.formats.wds import WdsDecoder, expand_urls, iter_tar_groups

        dec = WdsDecoder(data.text_key, "", require_text=True)
        for url in expand_urls(path):
            for g in iter_tar_groups(url):
                if isinstance(g, BadSample):
                    yield g
                    continue
                key, files = g
                raw = dec.raw_text(files)
                caps = clean_captions(raw if isinstance(raw, list) else [] if raw is None else [raw])
                if not caps:
                    what = "no text" if raw is None else "only empty captions"
                    yield BadSample(f"{Path(url).name}/{key}", f"{what} for text key '{data.text_key}' "
                                    f"(keys found: {', '.join(sorted(files))})")
                yield from ((f"{key}#{k}", c) for k, c in enumerate(caps))
    else:
        for key, caps in _caption_records(_text_reader(path, kind, data, split)):
            if not caps:
                yield BadSample(key, "no non-empty caption")
            yield from ((f"{key}#{k}", c) for k, c in enumerate(caps))


def _text_reader(path: str, kind: str, data: DataConfig, split: str) -> Any:
    """The reader of a caption file whose images need not be there (tables, COCO, Karpathy); other formats through
    :func:`_reader`."""
    if kind in ("csv", "tsv", "jsonl"):
        from .data.formats.table import TableDataset

        return TableDataset(path, kind, data.root, data.image_key, data.caption_key, "", data.separator,
                            require_caption=False)
    if kind in ("coco", "karpathy"):
        from .data.formats.coco import CocoCaptions, KarpathyCaptions

        if kind == "coco":
            return CocoCaptions(path, data.root, require_caption=False)
        return KarpathyCaptions(path, "train" if split == "eval_train" else split, data.root, require_caption=False)
    return _reader(path, kind, data, split)


def _caption_records(ds: Any) -> Iterator[tuple[str, list[str]]]:
    """``(key, captions)`` of every entry of a reader, from its records when it has them (tables, COCO, Karpathy:
    no image is decoded), else from its samples."""
    if hasattr(ds, "captions") and hasattr(ds, "items"):  # tables: (image path, raw captions, label) rows
        for i, (img, _, _) in enumerate(ds.items):
            yield img or f"row{i}", ds.captions(i)
    elif hasattr(ds, "items"):  # COCO / Karpathy: (key, image path, raw captions, labels)
        for key, _, raw, _ in ds.items:
            yield key, clean_captions(raw)
    else:
        for i in range(len(ds)):
            s = ds[i]
            if not isinstance(s, BadSample):
                yield s.key, list(s.captions)


def _collate(items: list) -> list:
    return items


@torch.no_grad()
def embed_image_source(model: Any, source: Any, batch_size: int = 256, device: str | torch.device = "cpu",
                       workers: int = 0, tracker: SkipTracker | None = None,
                       progress: bool = True) -> tuple[list[str], np.ndarray]:
    """Keys and ``[N, n_rkhs]`` float32 features of every usable image of a map-style ``source``, in order."""
    tracker = tracker or SkipTracker(0.05)
    enc = model.image_encoder.eval()
    loader = DataLoader(_Transformed(source, enc.image_size), batch_size=batch_size, num_workers=workers,
                        collate_fn=_collate)
    keys: list[str] = []
    feats: list[torch.Tensor] = []
    bar_off = not progress or not sys.stderr.isatty()  # no bar redraws into a log file
    with tqdm(total=len(source), unit="img", desc="embed images", disable=bar_off, dynamic_ncols=True) as bar:
        for items in loader:
            good = []
            for it in items:
                if isinstance(it, BadSample):
                    tracker.bad(it.key, it.reason, it.count)
                else:
                    tracker.ok()
                    good.append(it)
            tracker.check()
            if good:
                x = torch.stack([g[1] for g in good]).to(device)
                feats.append(enc(x).r1.float().cpu())
                keys.extend(g[0] for g in good)
            bar.update(len(items))
    return keys, _stack(feats, model)


@torch.no_grad()
def embed_captions(model: Any, captions: Iterator[tuple[str, str] | BadSample], batch_size: int = 256,
                   device: str | torch.device = "cpu", tracker: SkipTracker | None = None,
                   progress: bool = True) -> tuple[list[str], np.ndarray]:
    """Keys and ``[N, n_rkhs]`` float32 features of every usable caption, in order."""
    tracker = tracker or SkipTracker(0.05)
    if model.text_encoder is None or model.tokenizer is None:
        raise ConfigError(f"--text needs a model with a text encoder; this one was trained with method "
                          f"'{model.method}' (use tvdim, tvdim-nce or clip)")
    enc, tok = model.text_encoder.eval(), model.tokenizer
    keys: list[str] = []
    feats: list[torch.Tensor] = []
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        ids, mask = tok([c for _, c in batch])
        feats.append(enc(ids.to(device), mask.to(device), tokens=False).sentence.float().cpu())
        keys.extend(k for k, _ in batch)
        bar.update(len(batch))
        batch.clear()

    bar_off = not progress or not sys.stderr.isatty()  # no bar redraws into a log file
    with tqdm(unit="caption", desc="embed captions", disable=bar_off, dynamic_ncols=True) as bar:
        for item in captions:
            if isinstance(item, BadSample):
                tracker.bad(item.key, item.reason, item.count)
                tracker.check()
                continue
            tracker.ok()
            batch.append(item)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    return keys, _stack(feats, model)


def _stack(feats: list[torch.Tensor], model: Any) -> np.ndarray:
    if not feats:
        return np.zeros((0, model.image_encoder.n_rkhs), dtype=np.float32)
    return torch.cat(feats).numpy().astype(np.float32, copy=False)


def keys_path(out: Path) -> Path:
    """``feats.npy`` -> ``feats.keys.txt``."""
    return out.with_name(out.stem + ".keys.txt")


def write_embeddings(out: str | Path, keys: list[str], feats: np.ndarray) -> list[Path]:
    """``.npy`` (+ ``.keys.txt``, one key per line) or ``.parquet`` (columns ``key``, ``embedding``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ConfigError("--out *.parquet needs pyarrow (pip install pyarrow); or write .npy") from exc
        col = pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1), pa.float32()), feats.shape[1])
        pq.write_table(pa.table({"key": pa.array(keys, pa.string()), "embedding": col}), out)
        return [out]
    np.save(out, feats)
    kp = keys_path(out)
    kp.write_text("".join(k.replace("\n", " ") + "\n" for k in keys), encoding="utf-8")
    return [out, kp]


def embed_to_file(model_path: str | Path, data: str, out: str | Path, text: bool = False, kind: str = "auto",
                  data_cfg: DataConfig | None = None, batch_size: int = 256, device: str = "cpu",
                  workers: int = 0, progress: bool = True, split: str = "train") -> dict[str, Any]:
    """Embed ``data`` with the encoders of ``model_path`` (export folder or checkpoint) into ``out``.

    ``kind``: ``auto`` (guessed), ``folder``, ``lines`` or any ``data.format`` that reads files; ``split``: which
    entries of a file that holds several (Karpathy: ``train``, ``val``, ``test``).

    Returns a summary: ``{"n", "dim", "files", "skipped": SkipTracker.summary()}``. Raises DataError when nothing
    usable was found or when more than ``data.max_bad_fraction`` of the inputs are unusable.
    """
    from .api import load_model
    from .train.device import resolve_device

    out = Path(out)
    if out.suffix not in OUT_SUFFIXES:
        raise ConfigError(f"--out {out} must end in .npy or .parquet")
    data_cfg = data_cfg or DataConfig()
    kind = guess_kind(data, text) if kind == "auto" else kind
    split = "eval_train" if split == "train" else split  # the whole file (a Karpathy JSON: its train entries)
    dev = resolve_device(device)
    model = load_model(model_path, dev)
    tracker = SkipTracker(data_cfg.max_bad_fraction)
    if text:
        keys, feats = embed_captions(model, iter_captions(data, kind, data_cfg, split), batch_size, dev, tracker,
                                     progress)
    else:
        keys, feats = embed_image_source(model, image_source(data, kind, data_cfg, split), batch_size, dev, workers,
                                         tracker, progress)
    if not keys:
        detail = f"; first reasons: {'; '.join(tracker.reasons)}" if tracker.reasons else ""
        raise DataError(f"nothing to embed in {data}{detail}")
    tracker.check()
    files = write_embeddings(out, keys, feats)
    summary = {"n": len(keys), "dim": int(feats.shape[1]), "what": "captions" if text else "images",
               "files": [str(f) for f in files], "skipped": tracker.summary()}
    if tracker.n_bad:
        log.warning("skipped %d unusable inputs of %d: %s", tracker.n_bad, tracker.seen,
                    json.dumps(tracker.reasons))
    return summary


__all__ = ["embed_to_file", "embed_image_source", "embed_captions", "image_source", "iter_captions",
           "write_embeddings", "guess_kind", "data_kinds", "ImageFiles", "EMBED_KINDS"]
