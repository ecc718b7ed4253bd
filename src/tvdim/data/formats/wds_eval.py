"""Deterministic map-style reader over WebDataset shards, for evaluation (every sample once, in order).

:class:`WdsIndexed` scans the tar headers once (no image bytes read) and records, for every sample, the byte
ranges of its members; ``ds[i]`` then reads just those bytes. Being map-style, it works with any number of
data-loader workers and with ``DistributedSampler`` without dropping or repeating samples, so evaluation scores
the whole test set. Uncompressed ``.tar`` shards; remote ones (URLs, ``pipe:`` commands) are copied once through
webdataset's opener into a temporary folder that lives as long as the reader. A shard that is empty, truncated,
garbled, missing or shorter than its ``sizes.json`` count adds one :class:`BadSample` entry (keyed by the shard
path, ``count`` = samples lost when the count is known) so the failure is counted.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import weakref
from pathlib import Path
from typing import Iterator, Union

from torch.utils.data import Dataset

from ..sample import BadSample, Sample
from .images import clean_captions
from .wds import (TEXT_CHECK_N, WdsDecoder, check_exists, close_shard, expand_urls, is_remote, known_sizes, open_shard,
                  duplicate, long_shard, shard_label_values, shard_problem, split_key)

Entry = Union[tuple[str, str, dict[str, tuple[int, int]]], BadSample]  # (url, key, ext -> (offset, size))


def _end_problem(path: str | Path, offset: int) -> str:
    """What lies where tarfile stopped without an error: '' for an end-of-archive block, else the damage."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        block = fh.read(tarfile.BLOCKSIZE)
    if not block:
        return "no end-of-archive marker (the shard was cut short)"
    if block.strip(b"\0"):
        return f"unreadable member header at byte {offset} (garbled?); the rest of the shard was skipped"
    return ""


def index_shard(url: str, expected: tuple[int, str] | None = None, path: str | Path | None = None) -> list[Entry]:
    """Header scan of one shard -> entries in tar order (plus a BadSample entry on failure or when fewer
    samples than ``expected`` (count, source) were found). ``path``: a local copy of a remote ``url``."""
    p = Path(path or url)
    lost = expected[0] if expected else 1
    if not p.is_file():
        return [BadSample(url, "missing shard file", lost)]
    size = p.stat().st_size
    if size == 0:
        return [BadSample(url, "empty shard (0 bytes)", lost)]
    out: list[Entry] = []
    error = ""
    seen: set[str] = set()
    key = None
    try:
        with tarfile.open(p, mode="r:") as tf:
            for ti in tf:
                if not ti.isfile() or (parts := split_key(ti.name)) is None:
                    continue
                if ti.offset_data + ti.size > size:
                    error = f"truncated or unreadable tar (member {ti.name} runs past the end of the file)"
                    break
                if parts[0] != key:
                    key = parts[0]
                    if key in seen:  # a second group with this key: skipped and counted, not an extra sample
                        out.append(duplicate(url, key))
                        continue
                    seen.add(key)
                    out.append((url, key, {}))
                if isinstance(out[-1], BadSample):
                    continue
                out[-1][2][parts[1]] = (ti.offset_data, ti.size)  # type: ignore[index]
            else:
                error = _end_problem(p, tf.offset)
    except (tarfile.TarError, OSError, EOFError) as exc:
        text = f"{type(exc).__name__}: {exc}"
        error = f"not a tar archive ({text})" if not out else f"truncated or unreadable tar ({text})"
    n = sum(isinstance(e, tuple) for e in out)
    if not n and not error:
        error = "empty shard (no samples)"
    long_shard(url, n, expected)
    bad = shard_problem(url, n, error, expected)
    return out + [bad] if bad is not None else out


def _spool(url: str, folder: Path, i: int) -> tuple[Path, str]:
    """Copy a remote shard to ``folder``; (local path, read error or '')."""
    dest = folder / f"{i:06d}.tar"
    aborted, error = True, ""
    stream = None
    try:
        stream = open_shard(url)
        with open(dest, "wb") as fh:
            shutil.copyfileobj(stream, fh)
        aborted = False
        stream.close()
    except (OSError, ValueError) as exc:
        error = f"cannot read shard: {type(exc).__name__}: {exc}"
    finally:
        if stream is not None:
            close_shard(stream, aborted)
    return dest, error


class WdsIndexed(Dataset):
    """Map-style, ordered view of all samples in ``pattern``'s shards; ``ds[i]`` -> Sample | BadSample."""

    def __init__(self, pattern: str | list[str], decoder: WdsDecoder) -> None:
        self.pattern = pattern if isinstance(pattern, str) else "::".join(pattern)
        self.urls = expand_urls(pattern)
        check_exists(self.pattern, self.urls)
        self.decoder = decoder
        self._fh: dict = {}
        self.entries: list[Entry] = []
        self.local: dict[str, Path] = {}  # remote url -> local copy
        sizes = known_sizes(self.urls)
        for i, url in enumerate(self.urls):
            if is_remote(url):
                entries = self._index_remote(url, i)
            else:
                entries = index_shard(url, sizes.get(url))
            if decoder.require_text:
                head = [e for e in entries[:TEXT_CHECK_N] if not isinstance(e, BadSample)]
                decoder.check_text(url, [(e[1], self._read(e)) for e in head])
            self.entries.extend(entries)

    def _index_remote(self, url: str, i: int) -> list[Entry]:
        if not hasattr(self, "_tmp"):
            self._tmp = Path(tempfile.mkdtemp(prefix="tvdim-shards-"))
            weakref.finalize(self, shutil.rmtree, self._tmp, True)
        path, error = _spool(url, self._tmp, i)
        self.local[url] = path
        entries = index_shard(url, path=path)
        if error:  # what arrived is kept; the failure is counted once
            entries = [e for e in entries if not isinstance(e, BadSample)]
            entries.append(BadSample(url, f"{error} (after {len(entries)} samples)"))
        return entries

    def __len__(self) -> int:
        return len(self.entries)

    def label_values(self) -> Iterator[int]:
        """Labels of the shards, read without images."""
        return shard_label_values([str(self.local.get(u, u)) for u in self.urls], self.decoder.label_ext)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fh"] = {}
        return state

    def _read(self, entry: tuple[str, str, dict[str, tuple[int, int]]], exts: tuple[str, ...] = ()) -> dict[str, bytes]:
        """Member bytes of one entry (only ``exts`` when given); keeps one shard open per process."""
        url, _, members = entry
        fh = self._fh.get(url)
        if fh is None:
            for old in self._fh.values():
                old.close()
            fh = open(self.local.get(url, url), "rb")  # noqa: SIM115 - kept open for the next reads (in order)
            self._fh = {url: fh}
        out = {}
        for ext, (off, n) in members.items():
            if not exts or ext in exts:
                fh.seek(off)
                out[ext] = fh.read(n)
        return out

    def __getitem__(self, i: int) -> Sample | BadSample:
        entry = self.entries[i]
        if isinstance(entry, BadSample):
            return entry
        try:
            files = self._read(entry)
        except OSError as exc:
            return BadSample(f"{os.path.basename(entry[0])}/{entry[1]}", f"cannot read shard: {exc}")
        return self.decoder(entry[0], entry[1], files)

    def iter_captions(self) -> Iterator[str]:
        """All cleaned captions, reading only the text members."""
        for e in self.entries:
            if not isinstance(e, BadSample):
                raw = self.decoder.raw_text(self._read(e, self.decoder.text_members))
                yield from clean_captions(raw if isinstance(raw, list) else [] if raw is None else [raw])


__all__ = ["WdsIndexed", "index_shard"]
