"""``build_source(cfg, split)``: one entry point from :class:`DataConfig` to a dataset of samples.

Every source yields :class:`Sample` | :class:`BadSample`; wrap iteration with
``quality.filter_bad(..., SkipTracker(cfg.max_bad_fraction))`` (or use :func:`iter_samples`).

Splits (``split`` argument):

* ``train`` — pretraining data: ``cfg.path``. WebDataset: a shuffled, worker/rank-split stream
  (:class:`WdsStream`, ``cfg.resampled`` / ``cfg.num_samples`` / ``cfg.shuffle_buffer`` apply).
* ``eval_train`` — labelled train set for probes: ``cfg.eval_train_path`` if set, else ``cfg.path``.
* ``test`` — held-out set for probes / retrieval: ``cfg.eval_test_path`` (required for file formats).
* ``val`` — Karpathy only (the ``val`` split of the same file).

Evaluation splits are deterministic, unshuffled, map-style (WebDataset: :class:`WdsIndexed`) so every sample is
scored once, and captions are optional there (a labelled set without text is fine). Karpathy files hold all
splits: ``train``/``eval_train`` select ``train`` + ``restval``, ``test`` selects ``test`` (from
``eval_test_path`` if set, else ``cfg.path``). torchvision sets (``cifar10`` / ``cifar100`` / ``stl10``):
``cfg.path`` (or the eval path) is the download root; train/eval_train -> train split, test -> test split.
``synthetic`` is delegated to :func:`tvdim.data.synthetic.build_synthetic`.
"""
from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from torch.utils.data import IterableDataset

from ..config import DataConfig
from ..errors import ConfigError, DataError
from .class_file import CLASSES_FILE, read_class_names
from .formats.registry import FORMATS, Build, file_formats
from .quality import SkipTracker, filter_bad
from .sample import Sample

SPLITS = ("train", "eval_train", "test", "val")


def _check(cfg: DataConfig, split: str) -> None:
    if cfg.format not in FORMATS:
        raise ConfigError(f"unknown data.format '{cfg.format}'; valid formats: {', '.join(FORMATS)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")


def split_path(cfg: DataConfig, split: str) -> str:
    """The file / pattern / folder that ``split`` reads (see module docstring)."""
    if split == "train":
        path = cfg.path
    elif split == "eval_train":
        path = cfg.eval_train_path or cfg.path
    elif cfg.format == "karpathy":
        path = cfg.eval_test_path or cfg.path
    elif split == "test":
        path = cfg.eval_test_path
        if not path and FORMATS[cfg.format].test_from_path:
            path = cfg.path
    else:
        raise ConfigError(f"split '{split}' only exists for data.format=karpathy")
    if not path:
        key = {"train": "data.path", "eval_train": "data.path", "test": "data.eval_test_path"}[split]
        raise ConfigError(f"data.format={cfg.format} split '{split}' needs {key}")
    return path


def build_source(cfg: DataConfig, split: str = "train", image_size: int | None = None,
                 download: bool = False, require_text: bool | None = None) -> Any:
    """Dataset (map-style or iterable) yielding :class:`Sample` | :class:`BadSample` for ``split``.

    Args:
        cfg: data configuration. split: train | eval_train | test (| val for karpathy).
        image_size: target training size; enables JPEG draft decoding at that size (None = full decode).
        download: torchvision sets only — allow downloading into the root folder.
        require_text: a sample without a usable caption is a :class:`BadSample` (default: for ``train``). An
            image-only method (amdim, supervised) passes False so such images are still used.
    """
    _check(cfg, split)
    if cfg.format == "synthetic":  # generated: no path, no classes.json
        return FORMATS["synthetic"].build(Build(cfg, split, "", image_size, False, 0))
    path = split_path(cfg, split)
    need_text = split == "train" if require_text is None else require_text
    n_classes = file_class_count(cfg, split)  # labels outside classes.json become counted bad samples
    return FORMATS[cfg.format].build(Build(cfg, split, path, image_size, need_text, n_classes, download))


def iter_samples(cfg: DataConfig, split: str = "train", image_size: int | None = None,
                 tracker: SkipTracker | None = None) -> Iterator[Sample]:
    """Usable samples of ``split`` in dataset order, bad ones skipped and counted in ``tracker``."""
    ds = build_source(cfg, split, image_size)
    yield from filter_bad(_items(ds), tracker or SkipTracker(cfg.max_bad_fraction), split_path_or(cfg, split))


def _items(ds: Any) -> Iterator[Any]:
    """Iterate a map-style (by index) or iterable dataset."""
    if isinstance(ds, IterableDataset) or not hasattr(ds, "__len__"):
        return iter(ds)
    return (ds[i] for i in range(len(ds)))


def split_path_or(cfg: DataConfig, split: str) -> str:
    try:
        return split_path(cfg, split)
    except ConfigError:
        return cfg.format


def caption_corpus(cfg: DataConfig, max_n: int = 200_000) -> list[str]:
    """Up to ``max_n`` cleaned training captions, without decoding images (for tokenizer training).

    Labelled-only formats (imagefolder, torchvision) have no captions: returns ``[]``.
    """
    _check(cfg, "train")
    if cfg.format in ("imagefolder", "cifar10", "cifar100", "stl10"):
        return []
    if cfg.format == "wds":
        from .formats.images import clean_captions
        from .formats.wds import WdsDecoder, checked_groups, expand_urls

        dec = WdsDecoder(cfg.text_key, cfg.label_ext)
        problems: list[str] = []

        def gen() -> Iterator[str]:
            for url in expand_urls(cfg.path):
                for g in checked_groups(url, dec):
                    if not isinstance(g, tuple):
                        if g.key == url and len(problems) < 3:  # the shard itself failed (not a tar, missing, ...)
                            problems.append(f"{url}: {g.reason}")
                        continue
                    raw = dec.raw_text(g[1])
                    yield from clean_captions(raw if isinstance(raw, list) else [] if raw is None else [raw])

        corpus = list(islice(gen(), max_n))
        if not corpus and problems:  # say why, instead of "no non-empty caption" later
            raise DataError(f"no caption could be read from data.path={cfg.path} (data.format=wds): "
                            + "; ".join(problems))
        return corpus
    ds = build_source(cfg, "train")
    if hasattr(ds, "iter_captions"):
        return list(islice(ds.iter_captions(), max_n))
    return list(islice((c for s in _items(ds) if isinstance(s, Sample) for c in s.captions), max_n))


def num_samples(cfg: DataConfig, split: str = "train") -> int:
    """Number of samples in ``split`` (train: ``cfg.num_samples`` when > 0). WebDataset: sizes.json /
    ``*_stats.json``, else a header scan of the shards."""
    _check(cfg, split)
    if split == "train" and cfg.num_samples > 0:
        return cfg.num_samples
    if cfg.format == "wds":
        from .formats.wds import expand_urls, is_remote, iter_tar_groups, shard_sizes
        from .formats.wds_eval import index_shard

        urls = expand_urls(split_path(cfg, split))
        sizes = shard_sizes(urls)
        if sizes is not None:
            return sum(sizes.values())
        return sum(1 for u in urls for e in (iter_tar_groups(u) if is_remote(u) else index_shard(u))
                   if isinstance(e, tuple))
    ds = build_source(cfg, split)
    try:
        return len(ds)
    except TypeError as exc:
        raise DataError(f"cannot count samples of data.format={cfg.format} split {split}: {exc}") from exc


def classes_file(data: DataConfig, split: str) -> Path | None:
    """The ``classes.json`` beside ``split``'s files (the first shard's folder for WebDataset), if it exists."""
    if data.format not in file_formats():
        return None
    from .formats.wds import expand_urls, is_remote

    try:
        path = split_path(data, split)
    except ConfigError:
        return None
    first = expand_urls(path)[0] if data.format == "wds" else path
    if is_remote(first):
        return None
    found = Path(first).parent / CLASSES_FILE
    return found if found.is_file() else None


def file_class_count(data: DataConfig, split: str) -> int:
    """Number of names in ``split``'s ``classes.json`` (0 when there is none): the labels readers accept."""
    found = classes_file(data, split)
    return len(read_class_names(found)) if found is not None else 0


__all__ = ["classes_file", "file_class_count", "build_source", "iter_samples", "caption_corpus", "num_samples", "split_path", "FORMATS", "SPLITS"]
