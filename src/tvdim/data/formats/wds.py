"""WebDataset tar shards, streamed: :class:`WdsStream` (training) plus shared helpers.

Shards are named by a pattern with brace notation (``data/train-{000000..000099}.tar``; several patterns joined
with ``::``), expanded with :func:`webdataset.shardlists.expand_urls`. A shard is a local path, or a URL
(``https://...``, ``s3://...``) or a ``pipe:COMMAND`` opened with webdataset's own opener
(:func:`webdataset.gopen.gopen`). Tars are read here with :mod:`tarfile` in streaming mode (``r|*``, so
``.tar.gz`` works too) instead of webdataset's ``tarfile_to_samples``, because every failure must be *counted*
per shard: a truncated / unreadable tar, an empty shard, a missing shard file or a failed command is yielded as a
:class:`BadSample` whose key is the shard path, and the samples before the failure are kept.

Damaged shards are never silent. Python's tarfile stops without an error at a garbled member header or at a cut
that falls between members; both are detected from what follows (the end-of-archive marker is missing, or
non-zero bytes were left unread). When ``sizes.json`` knows the shard's count, a shard that yields fewer samples
is reported as short and every missing sample is counted (``BadSample.count``).

Samples are groups of members sharing a key (``KEY.jpg``, ``KEY.txt``, ``KEY.cls``, ``KEY.json``):
* image: first of ``jpg | jpeg | png | webp``;
* text: ``text_key`` = an extension (``txt``) or ``json:FIELD`` (``json:captions``; a list gives several
  captions); ``""`` / ``none`` = no text. ``txt`` (the default) takes every caption of a ``KEY.json`` that holds
  a ``captions`` list (what ``tvdim data convert`` writes, with the first one in ``KEY.txt`` for other tools)
  and ``KEY.txt`` otherwise, so no caption of a converted dataset is left unused. If the first
  :data:`TEXT_CHECK_N` samples of a shard (or all of a shorter shard) lack the configured text,
  :class:`DataError` names the configured key and the keys found;
* label: ``{key}.{label_ext}`` (integer text) -> ``labels={"label": int}`` when present.

Counts: ``sizes.json`` in the shard folder (``{"shard.tar": n}``) or img2dataset's ``{shard}_stats.json``
(field ``successes``), see :func:`shard_sizes`.
"""
from __future__ import annotations

import json
import logging
import math
import random
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from torch.utils.data import IterableDataset, get_worker_info
from webdataset.shardlists import expand_urls as _wds_expand

from ...distributed import current
from ...errors import DataError
from ..class_file import check_label
from ..sample import BadSample, Sample
from .images import clean_captions, decode_image, decode_text

log = logging.getLogger("tvdim.data")
WDS_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
TEXT_CHECK_N = 16
_KEY_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
Group = tuple[str, dict[str, bytes]]  # (key, ext -> bytes)


def is_remote(url: str) -> bool:
    """True for a ``pipe:`` command or a URL with a scheme (read through webdataset's opener)."""
    return url.startswith("pipe:") or "://" in url


def open_shard(url: str) -> IO[bytes]:
    """A binary stream of one shard: a local file, or webdataset's ``gopen`` for URLs and ``pipe:`` commands."""
    if is_remote(url):
        from webdataset.gopen import gopen

        return gopen(url, "rb")
    return open(url, "rb")  # noqa: SIM115 - closed by the caller


def close_shard(stream: Any, aborted: bool) -> None:
    """Close a shard stream; a reader that stops early kills a ``pipe:`` command instead of waiting for it."""
    proc = getattr(stream, "proc", None)
    if aborted and proc is not None and proc.poll() is None:
        proc.kill()
    try:
        stream.close()
    except OSError:  # a killed command's exit status; the failure, if any, was reported already
        pass


def expand_urls(pattern: str | list[str]) -> list[str]:
    """Brace / ``::`` pattern (or a folder -> its ``*.tar`` files, sorted) -> list of shard paths or URLs."""
    if isinstance(pattern, (list, tuple)):
        return [u for p in pattern for u in expand_urls(p)]
    if not pattern:
        raise DataError("no WebDataset shards given (data.path is empty)")
    if not is_remote(pattern) and Path(pattern).is_dir():
        urls = sorted(str(p) for p in Path(pattern).glob("*.tar"))
        if not urls:
            raise DataError(f"folder {pattern} holds no *.tar shards")
        return urls
    return list(_wds_expand(pattern))


def known_sizes(urls: list[str]) -> dict[str, tuple[int, str]]:
    """(sample count, file it came from) for the local shards whose count ``sizes.json`` or img2dataset's
    ``{shard}_stats.json`` beside them gives; shards with no known count are left out."""
    cache: dict[Path, dict] = {}
    out: dict[str, tuple[int, str]] = {}
    for url in urls:
        if is_remote(url):
            continue
        p = Path(url)
        if p.parent not in cache:
            f = p.parent / "sizes.json"
            try:
                cache[p.parent] = json.loads(f.read_text()) if f.is_file() else {}
            except (OSError, json.JSONDecodeError):
                cache[p.parent] = {}
        sizes = cache[p.parent]
        if p.name in sizes:
            try:
                out[url] = (int(sizes[p.name]), "sizes.json")
            except (TypeError, ValueError):
                pass
            continue
        stats = p.parent / (p.name.split(".")[0] + "_stats.json")
        try:
            out[url] = (int(json.loads(stats.read_text())["successes"]), stats.name)
        except (OSError, KeyError, ValueError, TypeError):
            pass
    return out


def shard_sizes(urls: list[str]) -> dict[str, int] | None:
    """Sample count per shard from ``sizes.json`` or ``*_stats.json`` next to it; ``None`` if any is unknown."""
    known = known_sizes(urls)
    return {u: known[u][0] for u in urls} if len(known) == len(urls) else None


def shard_problem(url: str, n: int, problem: str, expected: tuple[int, str] | None) -> BadSample | None:
    """The :class:`BadSample` for a shard that yielded ``n`` samples and stopped on ``problem`` ('' = cleanly),
    counting every sample its known size says is missing; None when nothing is wrong."""
    missing = expected[0] - n if expected and expected[0] > n else 0
    if not problem and not missing:
        return None
    text = f"{problem} after {n} samples" if problem and n else problem
    if missing:
        text = f"short shard: {n} of {expected[0]} samples ({expected[1]})" + (f"; {text}" if text else "")
    return BadSample(url, text, max(1, missing))


def tail_problem(stream: Any) -> str:
    """What is left after tarfile stopped without an error: '' after an end-of-archive block (zero padding
    follows), else the damage it passed over silently (a garbled header, or a cut between members)."""
    empty = True
    while chunk := stream.read(tarfile.RECORDSIZE):
        if chunk.strip(b"\0"):
            return "unreadable member header (garbled?); the rest of the shard was skipped"
        empty = False
    return "no end-of-archive marker (the shard was cut short)" if empty else ""


def _read_error(exc: BaseException, n: int) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if str(exc) == "empty file":
        return "empty shard (no data)"
    if n == 0 and isinstance(exc, tarfile.ReadError):
        return f"not a tar archive ({text})"
    return f"truncated or unreadable tar ({text})"


DUPLICATE = "duplicate key"
_WARNED: set[tuple[str, str]] = set()


def _warn_once(url: str, what: str, text: str) -> None:
    if (url, what) not in _WARNED:
        _WARNED.add((url, what))
        log.warning("%s", text)


def duplicate(url: str, key: str) -> BadSample:
    """The :class:`BadSample` for a second group of members with an already seen ``key`` in one shard (not an
    extra sample: it is skipped and counted, and a warning is logged once per shard)."""
    _warn_once(url, "dup", f"{url}: {DUPLICATE} '{key}' (its members appear in two places in the shard); "
                           "every repeated key is skipped and counted as a bad sample")
    return BadSample(f"{Path(url).name}/{key}", f"{DUPLICATE} '{key}' (already seen in this shard; skipped)")


def long_shard(url: str, n: int, expected: tuple[int, str] | None) -> None:
    """Warn once when a shard holds more distinct samples than its ``sizes.json`` / stats count."""
    if expected and n > expected[0]:
        _warn_once(url, "long", f"{url}: {n} samples, but {expected[1]} says {expected[0]}")


def split_key(name: str) -> tuple[str, str] | None:
    """``dir/KEY.ext.more`` -> (``dir/KEY``, ``ext.more``) as webdataset does; None for meta / odd names."""
    m = _KEY_RE.match(name)
    if not m or Path(name).name.startswith("__"):
        return None
    return m.group(1), m.group(2).lower()


def iter_tar_groups(url: str, expected: tuple[int, str] | None = None) -> Iterator[Group | BadSample]:
    """Stream one shard as (key, {ext: bytes}) groups; failures become a :class:`BadSample` keyed by the shard.

    ``expected``: (count, source) from :func:`known_sizes`; a shard that yields fewer samples is reported short,
    with one lost sample counted for each missing one."""
    lost = expected[0] if expected else 1
    if not is_remote(url):
        path = Path(url)
        if not path.is_file():
            yield BadSample(url, "missing shard file", lost)
            return
        if path.stat().st_size == 0:
            yield BadSample(url, "empty shard (0 bytes)", lost)
            return
    try:
        stream = open_shard(url)
    except (OSError, ValueError) as exc:
        yield BadSample(url, f"cannot open shard: {type(exc).__name__}: {exc}", lost)
        return
    key, files, n, problem, aborted = None, {}, 0, "", True
    seen: set[str] = set()
    try:
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tf:
                for ti in tf:
                    if not ti.isfile():
                        continue
                    parts = split_key(ti.name)
                    if parts is None:
                        continue
                    data = tf.extractfile(ti).read()  # type: ignore[union-attr]
                    if parts[0] != key:
                        if key is not None:
                            if key in seen:
                                yield duplicate(url, key)
                            else:
                                seen.add(key)
                                n += 1
                                yield key, files
                        key, files = parts[0], {}
                    files[parts[1]] = data
                problem = tail_problem(tf.fileobj)
            aborted = False
            stream.close()  # a pipe: command reports a failed exit status here
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            problem = _read_error(exc, n + (key is not None))
        if key is not None:
            if key in seen:
                yield duplicate(url, key)
            else:
                n += 1
                yield key, files
        if n == 0 and not problem:
            problem = "empty shard (no samples)"
        long_shard(url, n, expected)
        bad = shard_problem(url, n, problem, expected)
        if bad is not None:
            yield bad
    finally:
        close_shard(stream, aborted)


@dataclass
class WdsDecoder:
    """Picklable (key, files) -> :class:`Sample` | :class:`BadSample` conversion."""

    text_key: str = "txt"
    label_ext: str = "cls"
    require_text: bool = True
    max_pixels: int = 89_478_485
    draft_size: int | None = None
    num_classes: int = 0  # names in classes.json: a label outside 0..num_classes-1 is a BadSample (0 = unchecked)

    @property
    def text_ext(self) -> str:
        return self.text_key.split(":", 1)[0] if self.text_key not in ("", "none") else ""

    @property
    def text_members(self) -> tuple[str, ...]:
        """Member extensions :meth:`raw_text` may read."""
        return (self.text_ext, "json") if self.text_key == "txt" else (self.text_ext,)

    def raw_text(self, files: dict[str, bytes]) -> list | str | bytes | None:
        """The configured text value or ``None`` if absent (json field missing counts as absent)."""
        ext = self.text_ext
        if self.text_key == "txt:only":  # the .txt member alone, even when a .json lists more captions
            return files.get("txt")
        if self.text_key == "txt" and "json" in files:  # all the captions tvdim data convert kept
            try:
                obj = json.loads(decode_text(files["json"]))
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and isinstance(obj.get("captions"), list):
                return obj["captions"]
        if not ext or ext not in files:
            return None
        if ":" not in self.text_key:
            return files[ext]
        try:
            obj = json.loads(decode_text(files[ext]))
        except json.JSONDecodeError:
            return None
        value = obj.get(self.text_key.split(":", 1)[1]) if isinstance(obj, dict) else None
        return value

    def found_keys(self, files: dict[str, bytes]) -> list[str]:
        """Member extensions, plus ``json:FIELD`` for the fields of a JSON member."""
        out = sorted(files)
        if "json" in files:
            try:
                obj = json.loads(decode_text(files["json"]))
                out += [f"json:{k}" for k in obj] if isinstance(obj, dict) else []
            except json.JSONDecodeError:
                pass
        return out

    def check_text(self, url: str, groups: list[Group]) -> None:
        """DataError when every group in ``groups`` (the first ones of a shard) lacks the configured text."""
        if not self.require_text or not self.text_ext or not groups:
            return
        if all(self.raw_text(f) is None for _, f in groups):
            found = sorted({k for _, f in groups for k in self.found_keys(f)})
            raise DataError(f"{url}: none of the first {len(groups)} samples has text key '{self.text_key}' "
                            f"(data.text_key); keys found: {', '.join(found)}")

    def __call__(self, url: str, key: str, files: dict[str, bytes]) -> Sample | BadSample:
        bad_key = f"{Path(url).name}/{key}"
        ext = next((e for e in WDS_IMAGE_EXTS if e in files), None)
        if ext is None:
            return BadSample(bad_key, f"no image (keys found: {', '.join(sorted(files))})")
        raw = self.raw_text(files)
        caps = [] if raw is None else clean_captions(raw if isinstance(raw, list) else [raw])
        if self.require_text and self.text_ext and not caps:
            what = "no text" if raw is None else "only empty captions"
            return BadSample(bad_key, f"{what} for text key '{self.text_key}' (keys found: {', '.join(sorted(files))})")
        labels: dict[str, int] = {}
        if self.label_ext and self.label_ext in files:
            try:
                labels["label"] = int(decode_text(files[self.label_ext]).strip())
            except ValueError:
                return BadSample(bad_key, f"label .{self.label_ext} is not an integer: {files[self.label_ext][:20]!r}")
            wrong = check_label(labels["label"], self.num_classes, bad_key)
            if wrong is not None:
                return wrong
        img = decode_image(files[ext], bad_key, self.max_pixels, self.draft_size)
        return img if isinstance(img, BadSample) else Sample(key, img, caps, labels)


def checked_groups(url: str, decoder: "WdsDecoder",
                   expected: tuple[int, str] | None = None) -> Iterator[Group | BadSample]:
    """:func:`iter_tar_groups` after checking the shard's first groups carry the configured text key."""
    it = iter_tar_groups(url, expected)
    head: list[Group | BadSample] = []
    for item in it:
        head.append(item)
        if (isinstance(item, BadSample) and item.key == url) or len(head) >= TEXT_CHECK_N:  # shard-level failure
            break
    decoder.check_text(url, [g for g in head if not isinstance(g, BadSample)])
    yield from head
    yield from it


def iter_shard(url: str, decoder: "WdsDecoder", keep: tuple[int, int] = (0, 1),
               expected: tuple[int, str] | None = None) -> Iterator[Sample | BadSample]:
    """Decoded samples of one shard; ``keep=(i, n)`` keeps only groups with index % n == i (shard errors
    are yielded by the reader with i == 0 only)."""
    idx = 0
    for item in checked_groups(url, decoder, expected):
        if isinstance(item, BadSample):
            if keep[0] == 0:
                yield item
            continue
        if idx % keep[1] == keep[0]:
            yield decoder(url, *item)
        idx += 1


def shard_label_values(urls: list[str], label_ext: str) -> Iterator[int]:
    """The integer labels of the local shards' ``KEY.{label_ext}`` members, reading only those members (remote
    shards are not read; damaged ones are left to the reader to report). Stops after the first shard when it holds
    no label member: unlabelled data costs one shard's header scan."""
    if not label_ext:
        return
    for n, url in enumerate(urls):
        if is_remote(url) or not Path(url).is_file():
            continue
        found = False
        try:
            with tarfile.open(url, "r:*") as tf:
                for ti in tf:
                    parts = split_key(ti.name) if ti.isfile() else None
                    if parts is None or parts[1] != label_ext:
                        continue
                    found = True
                    try:
                        yield int(decode_text(tf.extractfile(ti).read()).strip())  # type: ignore[union-attr]
                    except ValueError:
                        continue
        except (tarfile.TarError, OSError, EOFError, zlib.error):
            continue
        if n == 0 and not found:
            return


def check_exists(pattern: str, urls: list[str]) -> None:
    """DataError when no local shard of ``pattern`` exists (remote shards are checked when read)."""
    if any(is_remote(u) or Path(u).is_file() for u in urls):
        return
    hint = (" (glob patterns are not expanded: use brace notation such as data-{000000..000009}.tar, or the "
            "folder)" if any(c in pattern for c in "*?[") else "")
    raise DataError(f"no shard of {pattern} exists (first expanded: {urls[0]}){hint}")


def dist_info() -> tuple[int, int, int, int]:
    """(rank, world_size, worker id, num_workers) from torch.distributed (when initialised) and the loader."""
    me = current()
    rank, world = me.rank, me.world_size
    info = get_worker_info()
    return rank, world, (info.id if info else 0), (info.num_workers if info else 1)


class WdsStream(IterableDataset):
    """Streaming training reader over WebDataset shards (yields :class:`Sample` | :class:`BadSample`).

    * ``shuffle``: shard order shuffled per epoch (same permutation on every rank/worker, seeded by
      ``seed + epoch``) and samples passed through a ``shuffle_buffer``-sized buffer.
    * Splitting: the shard list is divided among ``world_size * num_workers`` readers (rank-major); when there
      are fewer shards than readers, every reader streams all shards and keeps every n-th sample instead.
    * ``resampled``: each reader draws shards with replacement forever and stops after its share of
      ``num_samples`` (fixed-length epochs); without it every shard is read once per epoch.
    * Call :meth:`set_epoch` each epoch when using data-loader workers (workers get copies of this object).
    """

    def __init__(self, pattern: str | list[str], decoder: WdsDecoder, shuffle: bool = True,
                 shuffle_buffer: int = 1000, resampled: bool = False, num_samples: int = 0, seed: int = 0) -> None:
        self.pattern = pattern if isinstance(pattern, str) else "::".join(pattern)
        self.urls = expand_urls(pattern)
        check_exists(self.pattern, self.urls)
        self.decoder, self.shuffle, self.shuffle_buffer = decoder, shuffle, max(1, shuffle_buffer)
        self.resampled, self.seed, self.epoch = resampled, seed, 0
        self.expected = known_sizes(self.urls)
        known = len(self.expected) == len(self.urls)
        self.total = num_samples or (sum(n for n, _ in self.expected.values()) if known else 0)
        if resampled and not self.total:
            raise DataError(f"resampled WebDataset {self.pattern} needs data.num_samples (no sizes.json / stats)")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def label_values(self) -> Iterator[int]:
        """Labels of the shards, read without images (see :func:`shard_label_values`)."""
        return shard_label_values(self.urls, self.decoder.label_ext)

    def __len__(self) -> int:
        if not self.total:
            raise TypeError(f"unknown length for {self.pattern}: add sizes.json or set data.num_samples")
        return math.ceil(self.total / dist_info()[1])

    def _raw(self, me: int, n: int) -> Iterator[Sample | BadSample]:
        urls = list(self.urls)
        if self.resampled:
            rng = random.Random(f"{self.seed}-{self.epoch}-{me}-shards")
            while True:
                url = rng.choice(urls)
                yield from iter_shard(url, self.decoder, expected=self.expected.get(url))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(urls)
        if len(urls) >= n:
            for url in urls[me::n]:
                yield from iter_shard(url, self.decoder, expected=self.expected.get(url))
        else:
            for url in urls:
                yield from iter_shard(url, self.decoder, keep=(me, n), expected=self.expected.get(url))

    def __iter__(self) -> Iterator[Sample | BadSample]:
        rank, world, worker, nw = dist_info()
        me, n = rank * nw + worker, world * nw
        limit = math.ceil(self.total / n) if self.resampled else None
        src = self._raw(me, n)
        if self.shuffle and self.shuffle_buffer > 1:
            src = _shuffled(src, self.shuffle_buffer, random.Random(f"{self.seed}-{self.epoch}-{me}-buf"))
        for count, item in enumerate(src):
            if limit is not None and count >= limit:
                break
            yield item


def _shuffled(items: Iterator, size: int, rng: random.Random) -> Iterator:
    buf: list = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            j = rng.randrange(len(buf))
            buf[j], buf[-1] = buf[-1], buf[j]
            yield buf.pop()
    rng.shuffle(buf)
    yield from buf


__all__ = ["WdsStream", "WdsDecoder", "expand_urls", "shard_sizes", "known_sizes", "iter_tar_groups", "iter_shard",
           "dist_info", "checked_groups", "split_key", "is_remote", "open_shard", "close_shard", "check_exists",
           "shard_problem", "tail_problem", "shard_label_values", "duplicate", "DUPLICATE", "WDS_IMAGE_EXTS", "TEXT_CHECK_N"]
