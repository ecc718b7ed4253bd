"""Decode once (``data.cache``): the training images decoded, resized and centre-cropped to the uint8 base square
of the augmentation (:func:`~tvdim.data.device_aug.base_transform`), with their keys, captions and labels.

The first use reads the whole training source once (any format; a WebDataset stream is read shard by shard, in
order) and keeps the result; the run then trains on :class:`CachedSource`, a map-style source over it, so later
epochs (and, on disk, later runs) decode nothing. Bad samples are counted once, while the cache is built, under the
run's ``data.max_bad_fraction``; the counts are kept with the cache and logged by every run that reads it.

* ``memory``: in this process (data-loader workers share it when forked).
* ``disk``: ``<cache_dir>/<fingerprint>.npy`` (memory-mapped, ``N x b x b x 3`` uint8) and ``<fingerprint>.json``
  (keys, captions, labels, bad counts, byte size and checksum). Both are written under temporary names and
  renamed, so an interrupted build leaves no cache. The fingerprint hashes every reader setting, the image size,
  whether captions are required, and the size and modification time of every data file (shards, tables, image
  folders): a changed dataset or setting gets a new cache, never a stale one. A file that does not match its
  record (truncated, edited, unreadable) is reported and rebuilt. Under torchrun rank 0 builds, the others wait.
* ``auto``: memory when the cache takes at most a quarter of the available memory and one process trains; disk
  when it fits in half the free space of the cache folder; otherwise none (the decision and its reason go to
  train.log).

The views drawn from the cache are those of the uncached run bit for bit on the device path
(``data.augment=device``) and at 32 px on the per-image path; above 32 px the per-image path draws its
random-resized crops from the cached base square (twice the model size) instead of the original image.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset, IterableDataset

from ..config import DataConfig
from ..errors import ConfigError
from .device_aug import base_side, base_transform
from .quality import SkipTracker, filter_bad
from .sample import Sample

log = logging.getLogger("tvdim.data")

CACHE_VERSION = 1
MODES = ("auto", "none", "memory", "disk")
# settings that do not change what the cache holds (how it is read, sampled, evaluated, or where it lives)
_NOT_IN_KEY = ("workers", "augment", "cache", "cache_dir", "shuffle_buffer", "eval_train_path", "eval_test_path",
               "paired_fraction", "max_bad_fraction", "resampled", "num_samples", "synth_test")


@dataclass
class CacheMeta:
    """What a cache holds besides its pixels (the ``.json`` beside a disk cache)."""

    fingerprint: str  # the disk cache's key ("" in memory)
    side: int
    keys: list[str]
    captions: list[list[str]]
    labels: list[dict[str, int]]
    bad: dict[str, Any] = field(default_factory=dict)  # SkipTracker.summary() of the build
    nbytes: int = 0
    checksum: str = ""
    version: int = CACHE_VERSION


class CachedSource(Dataset):
    """Map-style training source over a cache: ``[i]`` is a :class:`Sample` whose image is the cached base square.

    ``images``: ``[N, b, b, 3]`` uint8 (an array, or a memory map reopened from ``path`` in each worker)."""

    def __init__(self, images: np.ndarray, meta: CacheMeta, path: Path | None = None) -> None:
        self.images, self.meta, self.path = images, meta, path

    def __len__(self) -> int:
        return len(self.meta.keys)

    def __getitem__(self, i: int) -> Sample:
        m = self.meta
        return Sample(m.keys[i], Image.fromarray(np.asarray(self.images[i])), list(m.captions[i]), dict(m.labels[i]))

    def __getstate__(self) -> dict[str, Any]:  # a spawned worker maps the file again instead of copying it
        state = dict(self.__dict__)
        if self.path is not None:
            state["images"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.images is None and self.path is not None:
            self.images = np.load(self.path, mmap_mode="r")


def cache_bytes(n: int, image_size: int) -> int:
    """Bytes of the pixels of ``n`` cached images for a model of ``image_size`` px."""
    return n * 3 * base_side(image_size) ** 2


def choose_mode(mode: str, nbytes: int | None, available_memory: int, free_disk: int,
                world_size: int = 1) -> tuple[str, str]:
    """``(none | memory | disk, reason)`` for ``data.cache=mode``; ``nbytes`` None = size unknown (a stream
    without sizes.json)."""
    if mode not in MODES:
        raise ConfigError(f"config key 'data.cache' must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode, "set by data.cache"
    if nbytes is None:
        return "none", "the number of training samples is unknown (no sizes.json, no data.num_samples)"
    size = f"{nbytes / 1e6:.0f} MB"
    if world_size == 1 and nbytes <= available_memory // 4:
        return "memory", f"{size} is at most a quarter of the {available_memory / 1e9:.1f} GB of available memory"
    if nbytes <= free_disk // 2:
        return "disk", f"{size} fits in half of the {free_disk / 1e9:.1f} GB free in the cache folder"
    return "none", f"{size} fits neither in memory nor on disk"


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``; else the physical memory / 2)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 0


def cache_dir(cfg: DataConfig) -> Path:
    """``data.cache_dir``, else ``$XDG_CACHE_HOME/tvdim/decoded`` (``~/.cache/tvdim/decoded``)."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tvdim" / "decoded"


def _data_files(cfg: DataConfig) -> list[tuple[str, int, int]]:
    """``(path, bytes, mtime_ns)`` of every local file the training data reads (folders walked)."""
    from .formats.wds import expand_urls, is_remote

    paths: list[str] = []
    if cfg.format == "wds" and cfg.path:
        paths = [u for u in expand_urls(cfg.path) if not is_remote(u)]
    elif cfg.format != "synthetic":
        paths = [p for p in (cfg.path, cfg.root) if p]
    out: list[tuple[str, int, int]] = []
    for p in map(Path, paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            out.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    return out


def fingerprint(cfg: DataConfig, image_size: int, require_text: bool) -> str:
    """The key of a cache: every setting that changes what it holds, and the state of every data file."""
    from ..config import to_plain

    settings = {k: v for k, v in to_plain(cfg).items() if k not in _NOT_IN_KEY}
    blob = json.dumps({"version": CACHE_VERSION, "settings": settings, "image_size": image_size,
                       "side": base_side(image_size), "require_text": require_text, "files": _data_files(cfg)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _samples(source: Any) -> Iterator[Any]:
    """Every sample of ``source`` once, in order: by index, or a stream's shards one after the other."""
    if isinstance(source, IterableDataset) or not hasattr(source, "__getitem__"):
        from .formats.wds import iter_shard

        if hasattr(source, "urls") and hasattr(source, "decoder"):  # every shard, not this reader's share
            for url in source.urls:
                yield from iter_shard(url, source.decoder, expected=source.expected.get(url))
            return
        yield from source
        return
    for i in range(len(source)):
        yield source[i]


def build(source: Any, image_size: int, max_bad_fraction: float, name: str = "the training data",
          alloc: Any = None) -> tuple[np.ndarray, CacheMeta]:
    """Decode every sample of ``source`` to its base square (``[N, b, b, 3]`` uint8) and collect its record.

    ``alloc(shape)``: where the pixels go when the count is known beforehand (default ``np.empty``; a disk cache
    passes a memory map, so the build never holds the images in memory). Raises
    :class:`~tvdim.errors.DataError` when too many samples are unusable (counted here, once)."""
    tf, b = base_transform(image_size), base_side(image_size)
    tracker = SkipTracker(max_bad_fraction)
    expected = source_count(source) or 0
    buf = (alloc or (lambda shape: np.empty(shape, np.uint8)))((expected, b, b, 3)) if expected else None
    overflow: list[np.ndarray] = []
    keys: list[str] = []
    captions: list[list[str]] = []
    labels: list[dict[str, int]] = []
    for s in filter_bad(_samples(source), tracker, name):
        px = tf(s.image).permute(1, 2, 0).numpy()  # [b, b, 3], exactly what the device path's worker makes
        if buf is not None and len(keys) < len(buf):
            buf[len(keys)] = px
        else:
            overflow.append(px)
        keys.append(s.key)
        captions.append(list(s.captions))
        labels.append(dict(s.labels))
    n = len(keys)
    if buf is not None and not overflow:
        images = buf if n == len(buf) else buf[:n]
    else:  # more samples than announced (or no count): the rows beyond the buffer are joined on
        parts = ([np.asarray(buf)] if buf is not None else []) + ([np.stack(overflow)] if overflow else [])
        images = np.concatenate(parts) if parts else np.zeros((0, b, b, 3), np.uint8)
    return images, CacheMeta("", b, keys, captions, labels, tracker.summary())


def _checksum(images: np.ndarray, chunk: int = 256) -> str:
    h = hashlib.blake2b(digest_size=16)
    for i in range(0, len(images), chunk):
        h.update(np.ascontiguousarray(images[i:i + chunk]).tobytes())
    return h.hexdigest()


def _load(npy: Path, meta_path: Path) -> tuple[np.ndarray, CacheMeta] | str:
    """The cache at ``npy`` / ``meta_path``, or why it cannot be used."""
    try:
        meta = CacheMeta(**json.loads(meta_path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        return f"its record {meta_path.name} is unreadable ({type(exc).__name__})"
    if meta.version != CACHE_VERSION:
        return f"it was written by cache version {meta.version}"
    try:
        if npy.stat().st_size != meta.nbytes:
            return f"{npy.name} has {npy.stat().st_size} bytes, its record says {meta.nbytes}"
        images = np.load(npy, mmap_mode="r")
    except (OSError, ValueError) as exc:
        return f"{npy.name} is unreadable ({exc})"
    if images.shape != (len(meta.keys), meta.side, meta.side, 3) or images.dtype != np.uint8:
        return f"{npy.name} holds {images.dtype} {images.shape}, its record says {len(meta.keys)} images of {meta.side} px"
    if _checksum(images) != meta.checksum:
        return f"{npy.name} does not match its checksum"
    return images, meta


def _write(images: np.ndarray, meta: CacheMeta, npy: Path, meta_path: Path, tmp: Path) -> None:
    """Put the pixels (``tmp`` when ``images`` is its whole memory map) and the record in place by renaming
    them (the record last), so that an interrupted build leaves no cache."""
    if isinstance(images, np.memmap) and tmp.exists() and np.load(tmp, mmap_mode="r").shape == images.shape:
        images.flush()  # the build filled the whole file
    else:
        part = tmp.with_name(f"{tmp.stem}.part.npy")
        np.save(part, np.ascontiguousarray(images))
        os.replace(part, tmp)
    meta.nbytes, meta.checksum = tmp.stat().st_size, _checksum(images)
    os.replace(tmp, npy)
    tmp_meta = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps(asdict(meta)))
    os.replace(tmp_meta, meta_path)


def cached(source: Any, cfg: DataConfig, image_size: int, require_text: bool, mode: str, is_main: bool = True,
           barrier: Any = None, name: str = "") -> CachedSource:
    """``source`` decoded once, in ``memory`` or on ``disk`` (built, or read back when a valid one exists).

    ``barrier``: called between rank 0's build and the other ranks' read (torchrun)."""
    name = name or cfg.path or cfg.format
    if mode == "memory":  # lives as long as the run: no key, so no walk over the data files
        return CachedSource(*build(source, image_size, cfg.max_bad_fraction, name=name))
    key = fingerprint(cfg, image_size, require_text)
    folder = cache_dir(cfg)
    npy, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    if is_main:
        found = _load(npy, meta_path) if meta_path.exists() or npy.exists() else "absent"
        if isinstance(found, str):
            if found != "absent":
                log.warning("data cache %s is damaged: %s; rebuilding it", npy, found)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"{key}.{os.getpid()}.tmp.npy"
            try:
                images, meta = build(source, image_size, cfg.max_bad_fraction, name, alloc=lambda shape: np.lib.format
                                     .open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape))
                meta.fingerprint = key
                _write(images, meta, npy, meta_path, tmp)
            finally:
                tmp.unlink(missing_ok=True)
            log.info("data cache written: %s (%d images of %d px, %.0f MB)", npy, len(meta.keys), meta.side,
                     meta.nbytes / 1e6)
            found = np.load(npy, mmap_mode="r"), meta
    if barrier is not None:
        barrier()
    if not is_main:
        found = _load(npy, meta_path)
    if isinstance(found, str):
        raise OSError(f"data cache {npy} cannot be read after it was written: {found}")
    images, meta = found
    return CachedSource(images, meta, npy)


def source_count(source: Any) -> int | None:
    """Samples in ``source`` when known without reading it."""
    try:
        return len(source)
    except TypeError:
        return None


__all__ = ["CachedSource", "CacheMeta", "MODES", "build", "cached", "cache_bytes", "cache_dir", "choose_mode",
           "fingerprint", "available_memory", "source_count"]
