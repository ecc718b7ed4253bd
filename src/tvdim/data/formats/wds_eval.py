"""Deterministic map-style reader over WebDataset shards, for evaluation (every sample once, in order).

:class:`WdsIndexed` scans the tar headers once (no image bytes read) and records, for every sample, the byte
ranges of its members; ``ds[i]`` then reads just those bytes. Being map-style, it works with any number of
data-loader workers and with ``DistributedSampler`` without dropping or repeating samples, so evaluation scores
the whole test set. Uncompressed local ``.tar`` shards only. A shard that is empty, truncated or missing adds
one :class:`BadSample` entry (keyed by the shard path) so the failure is counted.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Iterator, Union

from torch.utils.data import Dataset

from ...errors import DataError
from ..sample import BadSample, Sample
from .images import clean_captions
from .wds import TEXT_CHECK_N, WdsDecoder, expand_urls, split_key

Entry = Union[tuple[str, str, dict[str, tuple[int, int]]], BadSample]  # (url, key, ext -> (offset, size))


def index_shard(url: str) -> list[Entry]:
    """Header scan of one shard -> entries in tar order (plus a BadSample entry on failure)."""
    p = Path(url)
    if not p.is_file():
        return [BadSample(url, "missing shard file")]
    size = p.stat().st_size
    if size == 0:
        return [BadSample(url, "empty shard (0 bytes)")]
    out: list[Entry] = []
    error = ""
    try:
        with tarfile.open(url, mode="r:") as tf:
            for ti in tf:
                if not ti.isfile() or (parts := split_key(ti.name)) is None:
                    continue
                if ti.offset_data + ti.size > size:
                    error = f"member {ti.name} runs past the end of the file"
                    break
                if not out or isinstance(out[-1], BadSample) or out[-1][1] != parts[0]:
                    out.append((url, parts[0], {}))
                out[-1][2][parts[1]] = (ti.offset_data, ti.size)  # type: ignore[index]
    except (tarfile.TarError, OSError, EOFError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    if error:
        out.append(BadSample(url, f"truncated or unreadable tar after {len(out)} samples: {error}"))
    elif not out:
        out.append(BadSample(url, "empty shard (no samples)"))
    return out


class WdsIndexed(Dataset):
    """Map-style, ordered view of all samples in ``pattern``'s shards; ``ds[i]`` -> Sample | BadSample."""

    def __init__(self, pattern: str | list[str], decoder: WdsDecoder) -> None:
        self.pattern = pattern if isinstance(pattern, str) else "::".join(pattern)
        self.urls = expand_urls(pattern)
        if not any(Path(u).is_file() for u in self.urls):
            raise DataError(f"no shard of {self.pattern} exists (first expanded: {self.urls[0]})")
        self.decoder = decoder
        self._fh: dict = {}
        self.entries: list[Entry] = []
        for url in self.urls:
            entries = index_shard(url)
            if decoder.require_text:
                head = [e for e in entries[:TEXT_CHECK_N] if not isinstance(e, BadSample)]
                decoder.check_text(url, [(e[1], self._read(e)) for e in head])
            self.entries.extend(entries)

    def __len__(self) -> int:
        return len(self.entries)

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
            fh = open(url, "rb")  # noqa: SIM115 - kept open for the next reads (samples come in order)
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
                raw = self.decoder.raw_text(self._read(e, (self.decoder.text_ext,)))
                yield from clean_captions(raw if isinstance(raw, list) else [] if raw is None else [raw])


__all__ = ["WdsIndexed", "index_shard"]
