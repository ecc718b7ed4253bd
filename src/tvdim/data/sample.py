"""The one record type every data source yields.

Every reader (built-in synthetic data, CSV/TSV/JSONL, COCO, Karpathy JSON, WebDataset shards, labelled
image folders, torchvision sets) produces :class:`Sample` objects; the pretraining and evaluation code only
sees these, after :mod:`tvdim.data.transforms` has turned them into tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image


@dataclass
class Sample:
    """One image with its (possibly missing) captions and labels.

    Attributes:
        key: unique id of the sample within its source (file path or WebDataset key); used in error messages.
        image: decoded RGB image (any size; transforms resize).
        captions: zero or more non-empty captions. Empty list = image-only sample (contributes L_intra only).
        labels: task name -> class index (e.g. {"shape": 2, "colour": 0} or {"label": 17}); may be empty.
    """

    key: str
    image: Image.Image
    captions: list[str] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class BadSample:
    """Placeholder a reader yields instead of raising when one sample is unusable.

    The pipeline skips it, counts it, logs the first few ``reason`` strings with ``key`` and stops the run
    when the skipped fraction passes ``data.max_bad_fraction`` (see :mod:`tvdim.data.quality`). ``count`` > 1
    when one record stands for several lost samples (a shard shorter than its ``sizes.json`` count).
    """

    key: str
    reason: str
    count: int = 1
