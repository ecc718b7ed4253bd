"""Labelled image sets for evaluation: ImageFolder trees and torchvision CIFAR-10/100, STL-10.

All yield ``Sample(key, image, captions=[], labels={"label": class index})``.

* :class:`ImageFolderSet`: ``root/CLASS/*.{jpg,png,...}``; classes are the sorted subfolder names. Unreadable
  files (truncated, not an image, ...) come out as :class:`BadSample`.
* :func:`torchvision_set`: ``torchvision.datasets.CIFAR10 / CIFAR100 / STL10`` with ``download`` decided by the
  caller. With ``verify=False`` (default when not downloading) only the presence of the expected files is
  checked, not their MD5 sums, so locally prepared copies in the same on-disk layout (e.g. a small
  ``cifar-10-batches-py`` folder) load too.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ...errors import DataError
from ..sample import BadSample, Sample
from .images import IMAGE_EXTS, decode_image

TORCHVISION_SETS = ("cifar10", "cifar100", "stl10")


class ImageFolderSet(Dataset):
    """``root/CLASS/IMAGE`` tree -> map-style dataset of labelled samples (files sorted per class)."""

    def __init__(self, root: str | Path, max_pixels: int = 89_478_485, draft_size: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"image folder not found: {self.root}")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise DataError(f"{self.root} has no class subfolders (expected root/CLASS/image.jpg)")
        self.items: list[tuple[Path, int]] = []
        for idx, cls in enumerate(self.classes):
            for f in sorted((self.root / cls).rglob("*")):
                if f.is_file() and f.suffix.lower().lstrip(".") in IMAGE_EXTS:
                    self.items.append((f, idx))
        if not self.items:
            raise DataError(f"no image files under {self.root} (classes found: {', '.join(self.classes)}; "
                            f"extensions: {', '.join(IMAGE_EXTS)})")
        self.max_pixels, self.draft_size = max_pixels, draft_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample | BadSample:
        path, label = self.items[i]
        key = path.relative_to(self.root).as_posix()
        img = decode_image(path, key, self.max_pixels, self.draft_size)
        return img if isinstance(img, BadSample) else Sample(key, img, [], {"label": label})


def _lenient(base: type) -> type:
    """Subclass of a torchvision set that checks files exist instead of their MD5 sums."""

    class Lenient(base):  # type: ignore[valid-type, misc]
        def _check_integrity(self) -> bool:
            folder = os.path.join(self.root, self.base_folder)
            return all(os.path.isfile(os.path.join(folder, f)) for f, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            path = os.path.join(self.root, self.base_folder, self.meta["filename"])
            if not os.path.isfile(path):
                raise RuntimeError(f"Dataset metadata file not found: {path}")
            with open(path, "rb") as fh:
                self.classes = pickle.load(fh, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    Lenient.__name__ = base.__name__
    return Lenient


class TorchvisionSet(Dataset):
    """Wraps a torchvision labelled set; ``ds[i]`` -> ``Sample(f"{name}-{split}-{i}", RGB image, [], {"label": y})``."""

    def __init__(self, tv: Any, name: str, split: str) -> None:
        self.tv, self.name, self.split = tv, name, split
        self.classes = list(getattr(tv, "classes", []))

    def __len__(self) -> int:
        return len(self.tv)

    def __getitem__(self, i: int) -> Sample | BadSample:
        img, y = self.tv[i]
        return Sample(f"{self.name}-{self.split}-{i}", img.convert("RGB"), [], {"label": int(y)})


def torchvision_set(name: str, root: str | Path, split: str = "train", download: bool = False,
                    verify: bool | None = None) -> TorchvisionSet:
    """CIFAR-10 / CIFAR-100 / STL-10 from ``root`` (``split``: train | test); ``download`` fetches it.

    Raises :class:`DataError` naming the root and the expected folder when the files are missing.
    """
    from torchvision import datasets

    if name not in TORCHVISION_SETS:
        raise DataError(f"unknown torchvision set '{name}'; valid: {', '.join(TORCHVISION_SETS)}")
    if split not in ("train", "test"):
        raise DataError(f"torchvision set '{name}' has splits train | test, got '{split}'")
    base = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100, "stl10": datasets.STL10}[name]
    verify = download if verify is None else verify
    cls = base if verify else _lenient(base)
    try:
        if name == "stl10":
            tv = cls(str(root), split=split, download=download)
        else:
            tv = cls(str(root), train=split == "train", download=download)
    except RuntimeError as exc:
        raise DataError(f"{name} not found under {root} (expected {root}/{base.base_folder}): {exc}; "
                        f"download it with the download option or point data.path at the parent folder") from exc
    return TorchvisionSet(tv, name, split)


__all__ = ["ImageFolderSet", "TorchvisionSet", "torchvision_set", "TORCHVISION_SETS"]
