"""The training data path: the tokenizer, the DataLoader over a source, and batches moved to the device."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from .. import distributed as dist_utils
from ..config import Config
from ..data.device_aug import DeviceViews
from ..data.pipeline import Collator, PretrainDataset, ResumableSampler, StreamingPretrainDataset
from ..data.sources import caption_corpus
from ..errors import DataError
from ..models.tokenizer import CaptionTokenizer
from .signals import ignore_stop_signals


def build_tokenizer(cfg: Config, dinfo: dist_utils.DistInfo, out_dir: Path,
                    saved: str | None = None) -> CaptionTokenizer:
    """The checkpoint's tokenizer, the pretrained text tower's, a given tokenizer file, or one trained on the
    training captions (rank 0)."""
    if saved:
        return CaptionTokenizer.from_json(saved, cfg.text.max_len)
    if cfg.text.pretrained:
        from ..models.hf_text import hf_tokenizer

        return hf_tokenizer(cfg.text.pretrained, cfg.text.max_len)
    if cfg.text.tokenizer_path:
        return CaptionTokenizer.from_file(cfg.text.tokenizer_path, cfg.text.max_len)
    path = out_dir / "tokenizer.json"
    if dinfo.is_main:
        CaptionTokenizer.train(caption_corpus(cfg.data), cfg.text.vocab_size, cfg.text.max_len).save(path)
    dist_utils.barrier()
    return CaptionTokenizer.from_file(path, cfg.text.max_len)


def cache_source(cfg: Config, source: Any, require_text: bool, dinfo: dist_utils.DistInfo) -> tuple[Any, str]:
    """``source`` decoded once when ``data.cache`` (or ``auto``'s choice) says so (:mod:`tvdim.data.cache`), and
    the line train.log gets about the decision."""
    import shutil

    from ..data import cache

    count = getattr(source, "total", 0) or cache.source_count(source)
    nbytes = cache.cache_bytes(count, cfg.model.image_size) if count else None
    folder = cache.cache_dir(cfg.data)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    mode, why = cache.choose_mode(cfg.data.cache, nbytes, cache.available_memory(), shutil.disk_usage(probe).free,
                                  dinfo.world_size)
    if mode == "none":
        return source, f"data cache: none ({why})"
    t0 = time.perf_counter()
    src = cache.cached(source, cfg.data, cfg.model.image_size, require_text, mode, dinfo.is_main,
                       dist_utils.barrier if dinfo.world_size > 1 else None)
    bad = src.meta.bad
    where = f" at {src.path}" if src.path is not None else ""
    note = (f"data cache: {mode}{where} ({why}): {len(src)} images of {src.meta.side} px, "
            f"{src.images.nbytes / 1e6:.0f} MB, decoded once; ready in {time.perf_counter() - t0:.1f} s")
    if bad.get("bad"):
        note += (f"; {bad['bad']} of {bad['seen']} samples were unusable when it was built (counted once): "
                 + "; ".join(bad["first_reasons"]))
    return src, note


def make_loader(cfg: Config, source: Any, tokenizer: CaptionTokenizer | None, tasks: list[str], start_step: int,
                dinfo: dist_utils.DistInfo, pin: bool, workers: int = 0, augment: str = "cpu") -> DataLoader:
    """The training batches: ``workers`` loader processes (pinned memory when ``pin``); ``augment="device"``
    leaves the views to :class:`~tvdim.data.device_aug.DeviceViews` (the batches carry uint8 ``images``)."""
    size, bs = cfg.model.image_size, cfg.train.batch_size
    if not isinstance(source, IterableDataset):
        if len(source) == 0:
            raise DataError(f"the training data is empty (data.format={cfg.data.format}, data.path={cfg.data.path!r})")
        ds = PretrainDataset(source, size, cfg.train.seed, cfg.data.paired_fraction, augment)
        sampler = ResumableSampler(len(ds), bs, cfg.train.seed, dinfo.rank, dinfo.world_size, start_step)
        extra: dict[str, Any] = {"sampler": sampler}
    else:  # streaming (WebDataset): ranks / workers split shards inside the source
        ds = StreamingPretrainDataset(source, size, cfg.train.seed + start_step, cfg.data.paired_fraction,
                                      cfg.data.max_bad_fraction, augment)
        extra = {}
    # A private generator: creating the iterator must not draw from the global RNG (exact resume).
    gen = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + start_step)
    return DataLoader(ds, batch_size=bs, num_workers=workers, collate_fn=Collator(tokenizer, tasks), pin_memory=pin,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None, drop_last=True,
                      generator=gen, worker_init_fn=ignore_stop_signals, **extra)


def to_device(batch: dict, device: torch.device, channels_last: bool, views: DeviceViews | None = None,
               seed: int = 0) -> dict:
    """The batch on ``device`` (non-blocking copies from pinned memory); uint8 ``images`` become the two views
    ``x1`` / ``x2`` there (``views``, parameters drawn from ``seed``)."""
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
        elif isinstance(v, dict):
            v = {kk: vv.to(device, non_blocking=True) for kk, vv in v.items()}
        out[k] = v
    if "images" in out:
        if views is None:
            raise ValueError("a batch of base images needs the device views (data.augment=device)")
        out["x1"], out["x2"] = views(out.pop("images"), seed)
    for k in ("x1", "x2"):
        if channels_last and k in out:
            out[k] = out[k].contiguous(memory_format=torch.channels_last)
    return out


__all__ = ["build_tokenizer", "cache_source", "make_loader", "to_device"]
