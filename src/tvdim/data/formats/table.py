"""CSV / TSV / JSONL tables of (image path, caption[, label]) -> map-style dataset of :class:`Sample`.

* Image paths are relative to ``root`` (or absolute). A path that leaves ``root`` (``..``, an absolute path
  elsewhere, a symlink out of it) is still read, counted in ``outside_root`` and warned about once.
* Several captions per image: repeated rows with the same image are grouped (first-seen order), a cell
  holding a JSON list (``["a", "b"]``) or a JSONL list value gives several captions.
* ``label_key`` (optional) -> ``labels={"label": int}``.
* Files are read as UTF-8; undecodable bytes become U+FFFD (see :mod:`.images`).
* A missing column -> :class:`DataError` naming the file, the column and the columns found. A binary file (a tar
  shard given as a table) is refused as "not a text table" instead of quoting its bytes as column names.
* :meth:`check_images` (called by ``build_source``): when none of the images checked exists under ``root``
  (default: the table's folder), :class:`DataError` says where it looked.
* With ``require_caption`` (default), an image whose captions are all empty is a :class:`BadSample`;
  otherwise it is an image-only sample.
"""
from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path
from typing import Any, Iterator

from torch.utils.data import Dataset

from ...errors import DataError
from ..class_file import check_label
from ..sample import BadSample, Sample
from .images import check_image_folder, clean_captions, count_outside_root, decode_image

csv.field_size_limit(1 << 27)


def _split_cell(value: Any) -> list[Any]:
    """A caption cell -> list of raw captions (JSON list strings are expanded)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
            if isinstance(parsed, list):
                return parsed
        except json.JSONDecodeError:
            pass
    return [value]


def read_rows(path: str | Path, fmt: str, separator: str = ",") -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """(columns, iterator of (line number, row dict)) for a CSV/TSV/JSONL file; DataError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"table file not found: {path}")
    with open(path, "rb") as raw:
        head = raw.read(8192)
    if b"\0" in head:
        what = "a tar archive: use data.format=wds (--format wds)" if tarfile.is_tarfile(path) else "binary data"
        raise DataError(f"{path} is not a text table (format {fmt}); it holds {what}")
    fh = open(path, encoding="utf-8-sig", errors="replace", newline="")
    if fmt == "jsonl":
        records: list[tuple[int, dict]] = []
        with fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {n} is not valid JSON ({exc.msg}): {line[:80]!r}") from exc
                if not isinstance(rec, dict):
                    raise DataError(f"{path}: line {n} is a JSON {type(rec).__name__}, expected an object")
                records.append((n, rec))
        cols = list(records[0][1]) if records else []
        return cols, iter(records)
    sep = "\t" if fmt == "tsv" and separator == "," else separator
    with fh:
        reader = csv.DictReader(fh, delimiter=sep)
        cols = list(reader.fieldnames or [])
        rows = [(n + 2, row) for n, row in enumerate(reader)]
    return cols, iter(rows)


class TableDataset(Dataset):
    """Map-style dataset over a CSV / TSV / JSONL table; ``ds[i]`` -> :class:`Sample` or :class:`BadSample`.

    Args:
        path: table file. fmt: ``csv`` | ``tsv`` | ``jsonl``. root: image folder for relative paths.
        image_key / caption_key / label_key: column names (``label_key`` may be empty).
        separator: CSV delimiter (``tsv`` uses a tab unless another separator is given).
        max_pixels / draft_size: see :func:`decode_image`.
        require_caption: images without any non-empty caption become :class:`BadSample`.
        caption_key may be empty for an image-only table.
    """

    def __init__(self, path: str | Path, fmt: str = "csv", root: str | Path = "", image_key: str = "filepath",
                 caption_key: str = "title", label_key: str = "", separator: str = ",",
                 max_pixels: int = 89_478_485, draft_size: int | None = None, require_caption: bool = True,
                 num_classes: int = 0) -> None:
        if fmt not in ("csv", "tsv", "jsonl"):
            raise DataError(f"unknown table format '{fmt}'; valid: csv, tsv, jsonl")
        self.path, self.root = Path(path), Path(root) if root else Path(path).parent
        self.max_pixels, self.draft_size, self.require_caption = max_pixels, draft_size, require_caption
        self.num_classes = num_classes
        cols, rows = read_rows(path, fmt, separator)
        needed = [k for k in (image_key, caption_key, label_key) if k]
        for key in needed:
            if key not in cols:
                found = ", ".join(cols) or "(none)"
                found = found if len(found) <= 200 else found[:200] + "..."
                raise DataError(f"{self.path}: missing column '{key}'; columns found: {found!s}"
                                + (" (is the separator right?)" if len(cols) == 1 else ""))
        order: dict[str, int] = {}
        self.items: list[tuple[str, list[Any], str]] = []  # (image path, raw captions, raw label)
        for line, row in rows:
            if image_key not in row:
                raise DataError(f"{self.path}: line {line} has no '{image_key}'; keys found: {', '.join(row)}")
            img = str(row[image_key] or "").strip()
            caps = _split_cell(row.get(caption_key)) if caption_key else []
            if img in order:
                self.items[order[img]][1].extend(caps)
                continue
            order[img] = len(self.items)
            self.items.append((img, list(caps), "" if not label_key or row.get(label_key) is None else str(row[label_key])))
        if not self.items:
            raise DataError(f"no samples in {self.path} (the table has a header but no rows)")
        self.outside_root = count_outside_root((self.image_path(i) for i in range(len(self.items))
                                                if self.items[i][0]), self.root, str(self.path))

    def __len__(self) -> int:
        return len(self.items)

    def check_images(self) -> None:
        """:class:`DataError` naming the folder looked in when none of 20 images checked exists."""
        check_image_folder(lambda i: self.image_path(i) if self.items[i][0] else None, len(self.items),
                           str(self.root), "image paths are relative to data.root (--root for tvdim data and tvdim "
                           f"embed), default the folder of {self.path.name}")

    def image_path(self, i: int) -> Path:
        p = Path(self.items[i][0])
        return p if p.is_absolute() else self.root / p

    def label_values(self) -> Iterator[int]:
        """The integer labels of the rows (unparsable ones left out), without decoding images."""
        for _, _, raw in self.items:
            try:
                yield int(float(raw))
            except ValueError:
                continue

    def captions(self, i: int) -> list[str]:
        return clean_captions(self.items[i][1])

    def iter_captions(self) -> Iterator[str]:
        """All cleaned captions, without decoding images (for tokenizer training)."""
        for i in range(len(self)):
            yield from self.captions(i)

    def __getitem__(self, i: int) -> Sample | BadSample:
        rel, _, raw_label = self.items[i]
        key = rel or f"{self.path.name}:row{i}"
        if not rel:
            return BadSample(key, "empty image path")
        caps = self.captions(i)
        if self.require_caption and not caps:
            return BadSample(key, "no non-empty caption")
        labels: dict[str, int] = {}
        if raw_label.strip():
            try:
                labels["label"] = int(float(raw_label))
            except ValueError:
                return BadSample(key, f"label {raw_label!r} is not an integer")
            wrong = check_label(labels["label"], self.num_classes, key)
            if wrong is not None:
                return wrong
        img = decode_image(self.image_path(i), key, self.max_pixels, self.draft_size)
        if isinstance(img, BadSample):
            return img
        return Sample(key, img, caps, labels)


__all__ = ["TableDataset", "read_rows"]
