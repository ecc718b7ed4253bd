"""COCO captions JSON and Karpathy-split JSON -> map-style datasets of :class:`Sample`.

COCO: ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``; images are
``root/file_name`` (``root`` defaults to the JSON's folder). An optional integer ``label`` on an image entry
(written by ``tvdim data convert --to coco``; also read from Karpathy entries) becomes ``labels["label"]``.

Karpathy (``dataset_coco.json`` / ``dataset_flickr30k.json``): ``{"images": [{"filename", "filepath"?, "split",
"sentences": [{"raw"}]}]}``; images are ``root/filepath/filename``. ``split`` selects ``train`` (which also takes
``restval``), ``val`` or ``test``.

The JSON files usually live apart from the images (``annotations/``, Flickr8k's ``Flicker8k_Dataset/``), so
:meth:`check_images` (called by ``build_source``) stops with a :class:`DataError` saying where it looked and how to
set the image folder when none of the images checked exists under ``root``, instead of reporting every sample as
bad.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from torch.utils.data import Dataset

from ...errors import DataError
from ..class_file import check_label
from ..sample import BadSample, Sample
from .images import check_image_folder, clean_captions, count_outside_root, decode_image

KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",), "restval": ("restval",)}
ROOT_HINT = ("set the image folder with data.root (--root for tvdim data and tvdim embed); it defaults to the folder of "
             "{name}")


def _load_json(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with keys {', '.join(keys)}, got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}; keys found: {', '.join(data) or '(none)'}")
    return data


def _labels(entry: dict[str, Any]) -> dict[str, int]:
    value = entry.get("label")
    return {"label": int(value)} if isinstance(value, int) and not isinstance(value, bool) else {}


class _CaptionFile(Dataset):
    """Shared map-style logic: ``self.items`` = list of (key, image path, raw captions, labels)."""

    items: list[tuple[str, Path, list[Any], dict[str, int]]]

    num_classes = 0  # names in classes.json: a label outside 0..num_classes-1 is a BadSample (0 = unchecked)

    def __init__(self, max_pixels: int, draft_size: int | None, require_caption: bool) -> None:
        self.max_pixels, self.draft_size, self.require_caption = max_pixels, draft_size, require_caption

    def __len__(self) -> int:
        return len(self.items)

    def check_images(self) -> None:
        """:class:`DataError` naming the folder looked in when none of 20 images checked exists."""
        check_image_folder(lambda i: self.items[i][1], len(self.items), str(self.root),
                           ROOT_HINT.format(name=self.path.name))

    def iter_captions(self) -> Iterator[str]:
        for _, _, caps, _ in self.items:
            yield from clean_captions(caps)

    def label_values(self) -> Iterator[int]:
        """The entries' integer labels, without decoding images."""
        return (labels["label"] for _, _, _, labels in self.items if "label" in labels)

    def __getitem__(self, i: int) -> Sample | BadSample:
        key, path, raw, labels = self.items[i]
        caps = clean_captions(raw)
        if self.require_caption and not caps:
            return BadSample(key, "no non-empty caption")
        wrong = check_label(labels["label"], self.num_classes, key) if "label" in labels else None
        if wrong is not None:
            return wrong
        img = decode_image(path, key, self.max_pixels, self.draft_size)
        return img if isinstance(img, BadSample) else Sample(key, img, caps, dict(labels))


class CocoCaptions(_CaptionFile):
    """COCO captions JSON; one sample per image (all its captions), in ``images`` order."""

    def __init__(self, path: str | Path, root: str | Path = "", max_pixels: int = 89_478_485,
                 draft_size: int | None = None, require_caption: bool = True) -> None:
        super().__init__(max_pixels, draft_size, require_caption)
        self.path = Path(path)
        root_p = self.root = Path(root) if root else self.path.parent
        data = _load_json(self.path, ("images", "annotations"))
        caps: dict[Any, list[Any]] = {}
        for n, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict) or "image_id" not in ann:
                raise DataError(f"{self.path}: annotations[{n}] has no 'image_id'; found: {ann!r:.120}")
            caps.setdefault(ann["image_id"], []).append(ann.get("caption"))
        self.items = []
        for n, im in enumerate(data["images"]):
            if not isinstance(im, dict) or "file_name" not in im or "id" not in im:
                keys = ", ".join(im) if isinstance(im, dict) else type(im).__name__
                raise DataError(f"{self.path}: images[{n}] needs 'id' and 'file_name'; keys found: {keys}")
            self.items.append((str(im["file_name"]), root_p / str(im["file_name"]), caps.get(im["id"], []),
                               _labels(im)))
        if not self.items:
            raise DataError(f"no samples in {self.path} ('images' is empty)")
        self.outside_root = count_outside_root((it[1] for it in self.items), root_p, str(self.path))


class KarpathyCaptions(_CaptionFile):
    """Karpathy-split JSON; ``split`` in train (train+restval) | val | test | restval."""

    def __init__(self, path: str | Path, split: str = "train", root: str | Path = "", max_pixels: int = 89_478_485,
                 draft_size: int | None = None, require_caption: bool = True) -> None:
        super().__init__(max_pixels, draft_size, require_caption)
        if split not in KARPATHY_SPLITS:
            raise DataError(f"unknown Karpathy split '{split}'; valid: {', '.join(KARPATHY_SPLITS)}")
        self.path, self.split = Path(path), split
        root_p = self.root = Path(root) if root else self.path.parent
        data = _load_json(self.path, ("images",))
        wanted = KARPATHY_SPLITS[split]
        self.items, found = [], set()
        for n, im in enumerate(data["images"]):
            if not isinstance(im, dict) or "filename" not in im:
                keys = ", ".join(im) if isinstance(im, dict) else type(im).__name__
                raise DataError(f"{self.path}: images[{n}] has no 'filename'; keys found: {keys}")
            found.add(str(im.get("split")))
            if im.get("split") not in wanted:
                continue
            rel = Path(str(im.get("filepath", ""))) / str(im["filename"])
            raw = [s.get("raw") if isinstance(s, dict) else s for s in im.get("sentences", [])]
            self.items.append((rel.as_posix(), root_p / rel, raw, _labels(im)))
        if not self.items:
            raise DataError(f"no samples with split {'/'.join(wanted)} in {self.path}; splits found: "
                            f"{', '.join(sorted(found)) or '(none)'}")
        self.outside_root = count_outside_root((it[1] for it in self.items), root_p, str(self.path))


__all__ = ["CocoCaptions", "KarpathyCaptions", "KARPATHY_SPLITS"]
