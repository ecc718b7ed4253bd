"""From :class:`Sample` records to training / evaluation batches.

Map-style sources get exact, resumable order: :class:`ResumableSampler` yields ``epoch * N + index`` codes and
:class:`PretrainDataset` seeds each sample's augmentation from ``(seed, epoch, index)``, so a resumed run sees the
same views as an uninterrupted one, with any number of workers. Streaming sources (WebDataset) are wrapped by
:class:`StreamingPretrainDataset`.

Bad-sample accounting: every unusable sample travels with the batch as a ``(key, reason, count)`` record
(``batch["bad"]``) and ``batch["usable"]`` counts the usable samples drawn, for
:meth:`~tvdim.data.quality.SkipTracker.record_batch`. Each bad sample is reported once per epoch (map-style: when
its own index is drawn, not again when it is skipped while looking for a replacement). A stream also enforces the
bad-sample policy itself, so a stream that never yields a usable sample stops with the reasons instead of
waiting forever.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, Sampler

from ..errors import DataError, TvdimError
from .quality import SkipTracker
from .sample import BadSample, Sample
from .device_aug import base_transform
from .transforms import TwoViews, eval_transform


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little") >> 1


def keeps_caption(index: int, fraction: float, seed: int) -> bool:
    """Deterministic per-image decision for partially paired data (same images keep captions on resume)."""
    return fraction >= 1.0 or (_seed(seed, index, 7) % 1_000_000) < fraction * 1_000_000


class BaseImage:
    """``data.augment=device``: the worker's share of the work, PIL -> ``(uint8 base image, None)``; the views are
    drawn on the training device (:mod:`tvdim.data.device_aug`)."""

    def __init__(self, size: int) -> None:
        self.tf = base_transform(size)

    def __call__(self, image: Any) -> tuple[torch.Tensor, None]:
        return self.tf(image), None


def pair_transform(image_size: int, augment: str) -> TwoViews | BaseImage:
    """The per-sample transform of a pretraining loader: two augmented views (``cpu``) or the base image
    (``device``)."""
    return BaseImage(image_size) if augment == "device" else TwoViews(image_size)


@dataclass
class PretrainItem:
    """One training example: two views (or the uint8 base image in ``x1`` and ``x2=None`` when the views are drawn
    on the device), one caption ('' when none) and labels (-1 = unknown)."""

    x1: torch.Tensor
    x2: torch.Tensor | None
    caption: str
    labels: dict[str, int]
    key: str
    skipped: list[tuple[str, str, int]] = field(default_factory=list)  # (key, reason, count) skipped before it
    replaces: bool = False  # map-style: stands in for the unusable sample drawn at its index


def to_item(sample: Sample | BadSample, views: TwoViews | BaseImage, rng_seed: int, index: int, paired_fraction: float,
            data_seed: int) -> PretrainItem | BadSample:
    if isinstance(sample, BadSample):
        return sample
    py_state, torch_state = random.getstate(), torch.get_rng_state()
    try:  # seed the augmentation of this sample, restore the caller's RNG afterwards
        random.seed(rng_seed)
        torch.default_generator.manual_seed(rng_seed)  # CPU generator only
        x1, x2 = views(sample.image)
        caption = random.choice(sample.captions) if sample.captions else ""
    finally:
        random.setstate(py_state)
        torch.set_rng_state(torch_state)
    if not keeps_caption(index, paired_fraction, data_seed):
        caption = ""
    return PretrainItem(x1, x2, caption, dict(sample.labels), sample.key)


class PretrainDataset(Dataset):
    """Map-style pretraining data over a map-style source; index codes come from :class:`ResumableSampler`."""

    def __init__(self, source: Any, image_size: int, seed: int = 0, paired_fraction: float = 1.0,
                 augment: str = "cpu") -> None:
        self.source, self.seed, self.paired_fraction = source, seed, paired_fraction
        self.views = pair_transform(image_size, augment)
        self.n = len(source)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, code: int) -> PretrainItem:
        """An unusable sample is replaced by the next usable one (so batches keep their size on every rank).
        Only the drawn sample is reported bad: the ones skipped on the way are reported when they are drawn."""
        epoch, index = divmod(int(code), self.n)
        skipped: list[tuple[str, str, int]] = []
        for k in range(min(self.n, self.MAX_TRIES)):
            i = (index + k) % self.n
            item = to_item(self.source[i], self.views, _seed(self.seed, epoch, i), i, self.paired_fraction, self.seed)
            if isinstance(item, BadSample):
                skipped.append((item.key, item.reason, item.count))
                continue
            item.skipped, item.replaces = skipped[:1], k > 0
            return item
        raise DataError(f"{len(skipped)} consecutive unusable samples from index {index}; first: "
                        + "; ".join(f"{key}: {reason}" for key, reason, _ in skipped[:3]))

    MAX_TRIES = 64


class StreamingPretrainDataset(IterableDataset):
    """Pretraining data over a streaming source (an iterable of Samples, e.g. WebDataset shards).

    Endless (pass after pass). Each reader (worker) applies the bad-sample policy to what it reads: a
    :class:`DataError` when more than ``max_bad_fraction`` is unusable (see :class:`SkipTracker`) or when a whole
    pass over its share gave no usable sample, naming the source and the first reasons.
    """

    def __init__(self, source: Any, image_size: int, seed: int = 0, paired_fraction: float = 1.0,
                 max_bad_fraction: float = 0.05, augment: str = "cpu") -> None:
        self.source, self.seed, self.paired_fraction = source, seed, paired_fraction
        self.views = pair_transform(image_size, augment)
        self.max_bad_fraction, self.epoch = max_bad_fraction, 0

    def __iter__(self) -> Iterator[PretrainItem]:
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        tracker = SkipTracker(self.max_bad_fraction, log_first=3, warn=False)  # the trainer logs them
        skipped: list[tuple[str, str, int]] = []
        while True:  # endless: the loop decides when to stop
            if hasattr(self.source, "set_epoch"):
                self.source.set_epoch(self.epoch)
            n_good = 0
            for i, sample in enumerate(self.source):
                key_hash = _seed(sample.key) if hasattr(sample, "key") else i
                item = to_item(sample, self.views, _seed(self.seed, self.epoch, wid, i), key_hash,
                               self.paired_fraction, self.seed)
                if isinstance(item, BadSample):
                    tracker.bad(item.key, item.reason, item.count)
                    tracker.check()
                    skipped.append((item.key, item.reason, item.count))
                    continue
                tracker.ok()
                n_good += 1
                item.skipped, skipped = skipped, []
                yield item
            if n_good == 0:
                name = getattr(self.source, "pattern", "") or "the training data"
                share = f" (the share of data-loader worker {wid})" if info else ""
                found = (f"{tracker.n_bad} unusable, first reasons: " + "; ".join(tracker.reasons)
                         if tracker.reasons else "it holds no sample at all")
                raise DataError(f"no usable sample in a full pass over {name}{share}; {found}")
            self.epoch += 1


@contextmanager
def batches(loader: Any) -> Iterator[Iterator[dict[str, Any]]]:
    """``iter(loader)`` whose data-loader workers are shut down on leaving, also after an error (left to garbage
    collection, workers that ignore SIGTERM keep the process from exiting)."""
    it = iter(loader)
    try:
        yield it
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        for w in getattr(it, "_workers", []):  # still blocked in a read (a slow pipe:): SIGTERM is ignored there
            if w.is_alive():
                w.kill()


def next_batch(it: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """``next(it)`` on a DataLoader iterator; an error raised in a data-loader worker keeps its one-line
    message (the DataLoader otherwise adds the worker's traceback to it)."""
    try:
        return next(it)
    except TvdimError as exc:
        text = str(exc)
        if "Original Traceback" not in text:
            raise
        marker = f"{type(exc).__module__}.{type(exc).__qualname__}: "
        raise type(exc)(text[text.rfind(marker) + len(marker):].strip() if marker in text else text) from None


class ResumableSampler(Sampler[int]):
    """Endless, per-rank sampler: each epoch a permutation seeded by ``(seed, epoch)``, split across ranks
    (like ``DistributedSampler`` with drop_last), starting at an arbitrary global batch position for resume.

    Yields codes ``epoch * N + index``.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start_batch: int = 0) -> None:
        self.n, self.bs, self.seed, self.rank, self.world = n, batch_size, seed, rank, world_size
        self.per_epoch = n // (batch_size * world_size)  # full global batches per epoch
        if self.per_epoch < 1:
            raise DataError(f"the training data has {n} samples, fewer than one global batch ({batch_size} x "
                            f"{world_size}); lower train.batch_size or add data")
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[int]:
        epoch, b = divmod(self.start_batch, self.per_epoch)
        while True:
            g = torch.Generator().manual_seed(_seed(self.seed, epoch))
            perm = torch.randperm(self.n, generator=g)
            while b < self.per_epoch:
                start = (b * self.world + self.rank) * self.bs
                for idx in perm[start:start + self.bs].tolist():
                    yield epoch * self.n + idx
                b += 1
            epoch, b = epoch + 1, 0


class Collator:
    """Batches PretrainItems (``bad`` lists the unusable samples they replaced); tokenises captions once.
    Views go to ``x1`` / ``x2``; base images (views drawn on the device) to ``images`` (uint8)."""

    def __init__(self, tokenizer: Any | None, tasks: list[str]) -> None:
        self.tokenizer, self.tasks = tokenizer, tasks

    def __call__(self, good: list[PretrainItem]) -> dict[str, Any]:
        batch: dict[str, Any] = {"bad": [rec for it in good for rec in it.skipped], "n": len(good),
                                 "usable": sum(not it.replaces for it in good)}
        if good[0].x2 is None:
            batch["images"] = torch.stack([it.x1 for it in good])
        else:
            batch["x1"] = torch.stack([it.x1 for it in good])
            batch["x2"] = torch.stack([it.x2 for it in good])
        captions = [it.caption for it in good]
        batch["has_text"] = torch.tensor([bool(c.strip()) for c in captions])
        if self.tokenizer is not None:
            batch["ids"], batch["mask"] = self.tokenizer(captions)
        batch["labels"] = {t: torch.tensor([it.labels.get(t, -1) for it in good]) for t in self.tasks}
        return batch


class EvalDataset(Dataset):
    """Map-style evaluation data: ``(image tensor, labels dict, list of captions)`` with the test transform."""

    def __init__(self, source: Any, image_size: int) -> None:
        self.source, self.tf = source, eval_transform(image_size)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> Any:
        s = self.source[i]
        if isinstance(s, BadSample):
            return s
        return self.tf(s.image), dict(s.labels), list(s.captions)
