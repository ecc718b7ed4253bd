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
from typing import Any, Iterator

from torch.utils.data import IterableDataset

from ..config import DataConfig
from ..errors import ConfigError, DataError
from .classes import file_class_count
from .quality import SkipTracker, filter_bad
from .sample import Sample

FORMATS = ("synthetic", "csv", "tsv", "jsonl", "coco", "karpathy", "wds", "imagefolder", "cifar10", "cifar100",
           "stl10")
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
        if not path and cfg.format in ("cifar10", "cifar100", "stl10"):
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
    if cfg.format == "synthetic":
        from .synthetic import build_synthetic

        return build_synthetic(cfg, split, image_size)
    path = split_path(cfg, split)
    train = split == "train"
    need_text = train if require_text is None else require_text
    common = {"max_pixels": cfg.max_image_pixels, "draft_size": image_size}
    n_classes = file_class_count(cfg, split)  # labels outside classes.json become counted bad samples
    if cfg.format in ("csv", "tsv", "jsonl"):
        from .formats.table import TableDataset

        return _checked(TableDataset(path, cfg.format, cfg.root, cfg.image_key, cfg.caption_key, cfg.label_key,
                                     cfg.separator, require_caption=need_text, num_classes=n_classes, **common))
    if cfg.format == "coco":
        from .formats.coco import CocoCaptions

        return _checked(_with_classes(CocoCaptions(path, cfg.root, require_caption=need_text, **common), n_classes))
    if cfg.format == "karpathy":
        from .formats.coco import KarpathyCaptions

        ksplit = {"train": "train", "eval_train": "train"}.get(split, split)
        return _checked(_with_classes(KarpathyCaptions(path, ksplit, cfg.root, require_caption=need_text, **common),
                                      n_classes))
    if cfg.format == "wds":
        from .formats.wds import WdsDecoder, WdsStream
        from .formats.wds_eval import WdsIndexed

        dec = WdsDecoder(cfg.text_key, cfg.label_ext, require_text=need_text, max_pixels=cfg.max_image_pixels,
                         draft_size=image_size, num_classes=n_classes)
        if train:
            return WdsStream(path, dec, shuffle=cfg.shuffle_buffer > 0, shuffle_buffer=cfg.shuffle_buffer,
                             resampled=cfg.resampled, num_samples=cfg.num_samples)
        return WdsIndexed(path, dec)
    if cfg.format == "imagefolder":
        from .formats.labelled import ImageFolderSet

        return ImageFolderSet(path, **common)
    from .formats.labelled import torchvision_set

    return torchvision_set(cfg.format, path, "test" if split == "test" else "train", download=download)


def _with_classes(ds: Any, n_classes: int) -> Any:
    ds.num_classes = n_classes
    return ds


def _checked(ds: Any) -> Any:
    """A reader of image paths after checking its image folder holds the images (see ``check_images``)."""
    ds.check_images()
    return ds


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


__all__ = ["build_source", "iter_samples", "caption_corpus", "num_samples", "split_path", "FORMATS", "SPLITS"]
