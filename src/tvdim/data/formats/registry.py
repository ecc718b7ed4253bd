"""The data-format registry: ``data.format`` name -> the reader of a split. :func:`tvdim.data.sources.build_source`,
class discovery, evaluation and the data tools read it; adding a format is its reader module plus one decorated
builder here::

    @register_format("parquet", files=True)
    def _parquet(b: Build) -> Any:
        from .parquet import ParquetPairs
        return ParquetPairs(b.path, ..., require_caption=b.need_text, num_classes=b.n_classes, **b.common)

``files``: the format reads files of the user's, beside which a ``classes.json`` may name the labels.
``test_from_path``: the test split reads ``data.path`` when ``data.eval_test_path`` is empty (torchvision sets).
Readers are imported inside the builders, so naming the formats loads none of them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...config import DataConfig
from ...registry import register


@dataclass(frozen=True)
class Build:
    """What a builder gets: the config, the split, the path that split reads, and the reader settings."""

    cfg: DataConfig
    split: str
    path: str
    image_size: int | None  # the training size: JPEG draft decoding at that size (None = full decode)
    need_text: bool  # a sample without a usable caption is a BadSample
    n_classes: int  # names in classes.json (0 = none): labels outside them become BadSamples
    download: bool = False  # torchvision sets only

    @property
    def common(self) -> dict[str, Any]:
        """The image-decoding settings every image-path reader takes."""
        return {"max_pixels": self.cfg.max_image_pixels, "draft_size": self.image_size}


@dataclass(frozen=True)
class DataFormat:
    name: str
    build: Callable[[Build], Any]
    files: bool = False
    test_from_path: bool = False


FORMATS: dict[str, DataFormat] = {}


def register_format(name: str, files: bool = False, test_from_path: bool = False
                    ) -> Callable[[Callable[[Build], Any]], Callable[[Build], Any]]:
    def add(build: Callable[[Build], Any]) -> Callable[[Build], Any]:
        register(FORMATS, name, DataFormat(name, build, files, test_from_path), "data format")
        return build
    return add


def file_formats() -> tuple[str, ...]:
    """Formats whose files may have a ``classes.json`` beside them."""
    return tuple(n for n, f in FORMATS.items() if f.files)


def _checked(ds: Any) -> Any:
    """A reader of image paths after checking its image folder holds the images (see ``check_images``)."""
    ds.check_images()
    return ds


def _with_classes(ds: Any, n_classes: int) -> Any:
    ds.num_classes = n_classes
    return ds


@register_format("synthetic")
def _synthetic(b: Build) -> Any:
    from ..synthetic import build_synthetic

    return build_synthetic(b.cfg, b.split, b.image_size)


def _table(b: Build) -> Any:
    from .table import TableDataset

    c = b.cfg
    return _checked(TableDataset(b.path, c.format, c.root, c.image_key, c.caption_key, c.label_key, c.separator,
                                 require_caption=b.need_text, num_classes=b.n_classes, **b.common))


for _name in ("csv", "tsv", "jsonl"):
    register_format(_name, files=True)(_table)


@register_format("coco", files=True)
def _coco(b: Build) -> Any:
    from .coco import CocoCaptions

    return _checked(_with_classes(CocoCaptions(b.path, b.cfg.root, require_caption=b.need_text, **b.common),
                                  b.n_classes))


@register_format("karpathy", files=True)
def _karpathy(b: Build) -> Any:
    from .coco import KarpathyCaptions

    ksplit = {"train": "train", "eval_train": "train"}.get(b.split, b.split)
    return _checked(_with_classes(KarpathyCaptions(b.path, ksplit, b.cfg.root, require_caption=b.need_text,
                                                   **b.common), b.n_classes))


@register_format("wds", files=True)
def _wds(b: Build) -> Any:
    from .wds import WdsDecoder, WdsStream
    from .wds_eval import WdsIndexed

    c = b.cfg
    dec = WdsDecoder(c.text_key, c.label_ext, require_text=b.need_text, max_pixels=c.max_image_pixels,
                     draft_size=b.image_size, num_classes=b.n_classes)
    if b.split == "train":
        return WdsStream(b.path, dec, shuffle=c.shuffle_buffer > 0, shuffle_buffer=c.shuffle_buffer,
                         resampled=c.resampled, num_samples=c.num_samples)
    return WdsIndexed(b.path, dec)


@register_format("imagefolder")
def _imagefolder(b: Build) -> Any:
    from .labelled import ImageFolderSet

    return ImageFolderSet(b.path, **b.common)


def _torchvision(b: Build) -> Any:
    from .labelled import torchvision_set

    return torchvision_set(b.cfg.format, b.path, "test" if b.split == "test" else "train", download=b.download)


for _name in ("cifar10", "cifar100", "stl10"):
    register_format(_name, test_from_path=True)(_torchvision)


__all__ = ["Build", "DataFormat", "FORMATS", "register_format", "file_formats"]
