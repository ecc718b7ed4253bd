"""``tvdim data corrupt-captions``: a copy of a dataset with deliberately noisy captions (seeded).

Modes, each applied to a sample with probability ``p``:
* ``swap``: its captions are replaced by those of another random sample (ground-truth pairing broken);
* ``shuffle-words``: the words of each caption are shuffled (bag of words kept, syntax destroyed);
* ``drop``: its captions are removed (wds: ``.txt`` member removed and ``json`` captions emptied; tables: empty
  cell). Readers then count those samples as missing text in training (image-only in evaluation).

Inputs: WebDataset shards (pattern or folder; written to ``out`` as same-named shards + copied ``sizes.json`` / ``classes.json``)
or a CSV / TSV / JSONL table (written to the file ``out``). The input is never overwritten (refused when the
output resolves to the input) and each output file is written under a temporary name, then renamed.
A manifest of the corrupted samples is written beside the output: ``corrupted.json`` in the shard folder (sample
keys) or ``<table>.corrupted.json`` (0-based row indices), so a noise detector can be scored against it.
"""
from __future__ import annotations

import csv
import json
import random
import shutil
import tarfile
from pathlib import Path
from typing import Any

from ...errors import DataError
from .convert import MODES, _add, _atomic_write
from .images import decode_text
from .table import read_rows
from ..sample import BadSample
from .wds import check_exists, expand_urls, iter_tar_groups


MANIFEST = "corrupted.json"  # beside corrupted shards: the keys whose captions were changed


class _Corrupter:
    def __init__(self, pool: list[list[str]], mode: str, p: float, seed: int) -> None:
        if mode not in MODES:
            raise DataError(f"unknown corruption mode '{mode}'; valid: {', '.join(MODES)}")
        if not 0.0 <= p <= 1.0:
            raise DataError(f"corruption rate p must be in [0, 1], got {p}")
        self.pool, self.mode, self.p, self.rng, self.changed = pool, mode, p, random.Random(seed), 0
        self.changed_rows: list[int] = []  # indices of corrupted samples (the manifest)

    def __call__(self, i: int, caps: list[str]) -> list[str]:
        if self.rng.random() >= self.p:
            return caps
        self.changed += 1
        self.changed_rows.append(i)
        if self.mode == "drop":
            return []
        if self.mode == "shuffle-words":
            out = []
            for c in caps:
                words = c.split()
                self.rng.shuffle(words)
                out.append(" ".join(words))
            return out
        if len(self.pool) < 2:
            return caps
        j = self.rng.randrange(len(self.pool) - 1)
        return self.pool[j + (j >= i)]


def _check_out(src: Path, out: Path) -> None:
    if src.resolve() == out.resolve():
        raise DataError(f"output {out} is the input; corrupt-captions never overwrites its input")


def _corrupt_table(path: Path, out: Path, fmt: str, caption_key: str, sep: str, c_args: tuple) -> dict[str, Any]:
    cols, rows_it = read_rows(path, fmt, sep)
    if caption_key not in cols:
        raise DataError(f"{path}: missing column '{caption_key}'; columns found: {', '.join(cols)}")
    rows = [r for _, r in rows_it]
    pool = [[str(r.get(caption_key) or "")] for r in rows]
    cor = _Corrupter(pool, *c_args)
    for i, r in enumerate(rows):
        new = cor(i, [str(r.get(caption_key) or "")])
        r[caption_key] = new[0] if new else ""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            if fmt == "jsonl":
                fh.writelines(json.dumps(r) + "\n" for r in rows)
            else:
                w = csv.DictWriter(fh, cols, delimiter="\t" if fmt == "tsv" and sep == "," else sep)
                w.writeheader()
                w.writerows(rows)
    _atomic_write(out, write)
    manifest = out.with_name(out.name + ".corrupted.json")
    _write_manifest(manifest, [str(i) for i in cor.changed_rows], len(rows), cor, "row")
    return {"samples": len(rows), "changed": cor.changed, "output": str(out), "manifest": str(manifest)}


def _write_manifest(path: Path, keys: list[str], n: int, cor: "_Corrupter", key_kind: str) -> None:
    """Which samples were corrupted (so a noise detector can be scored): ``{"mode", "p", "samples", "key_kind",
    "keys"}``; ``key_kind`` is ``key`` (WebDataset sample keys) or ``row`` (0-based data-row index of a table)."""
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps({"mode": cor.mode, "p": cor.p, "samples": n, "changed": len(keys),
                                   "key_kind": key_kind, "keys": keys}))
    _atomic_write(path, write)


def _read_caps(files: dict[str, bytes]) -> list[str]:
    if "json" in files:
        try:
            obj = json.loads(decode_text(files["json"]))
            if isinstance(obj, dict) and isinstance(obj.get("captions"), list):
                return [str(c) for c in obj["captions"]]
        except json.JSONDecodeError:
            pass
    return [decode_text(files["txt"])] if "txt" in files else []


def _groups(url: str) -> list[tuple[str, dict[str, bytes], list[str]]]:
    """(key, {ext: bytes}, member order) of a whole shard (shards are small enough to hold in memory); a shard
    that cannot be read whole is an error (a copy would silently lose its samples)."""
    out: list = []
    for g in iter_tar_groups(url):
        if isinstance(g, BadSample):
            raise DataError(f"cannot copy {url}: {g.reason}")
        key, files = g
        out.append((key, files, list(files)))
    return out


def _corrupt_wds(pattern: str, out: Path, c_args: tuple) -> dict[str, Any]:
    urls = expand_urls(pattern)
    check_exists(pattern, urls)
    for u in urls:
        _check_out(Path(u).parent, out)
    shards = [(u, _groups(u)) for u in urls]
    pool = [_read_caps(f) for _, gs in shards for _, f, _ in gs]
    cor = _Corrupter(pool, *c_args)
    out.mkdir(parents=True, exist_ok=True)
    i = 0
    keys = [key for _, gs in shards for key, _, _ in gs]
    for url, gs in shards:
        def write(tmp: Path, gs: list = gs) -> None:
            nonlocal i
            with tarfile.open(tmp, "w") as tf:
                for key, files, order in gs:
                    caps = cor(i, _read_caps(files))
                    i += 1
                    if "json" in files:
                        try:
                            obj = json.loads(decode_text(files["json"]))
                        except json.JSONDecodeError:
                            obj = None
                        if isinstance(obj, dict):
                            obj["captions"] = caps
                            files["json"] = json.dumps(obj).encode()
                    if caps and "txt" in order:
                        files["txt"] = caps[0].encode()
                    for ext in order:
                        if not (ext == "txt" and not caps):
                            _add(tf, f"{key}.{ext}", files[ext])
        _atomic_write(out / Path(url).name, write)
    folder = Path(urls[0]).parent
    for meta in ("sizes.json", "classes.json"):  # counts and class names travel with the shards
        if (folder / meta).is_file():
            shutil.copyfile(folder / meta, out / meta)
    _write_manifest(out / MANIFEST, [keys[i] for i in cor.changed_rows], len(pool), cor, "key")
    return {"samples": len(pool), "changed": cor.changed, "output": str(out), "shards": len(urls),
            "manifest": str(out / MANIFEST)}


def corrupt_captions(src: str, out: str, fmt: str = "wds", mode: str = "swap", p: float = 0.2, seed: int = 0,
                     caption_key: str = "title", separator: str = ",") -> dict[str, Any]:
    """Write a caption-corrupted copy of ``src`` to ``out``; returns ``{"samples", "changed", "output"}``."""
    c_args = (mode, p, seed)
    if fmt == "wds":
        return _corrupt_wds(src, Path(out), c_args)
    if fmt in ("csv", "tsv", "jsonl"):
        _check_out(Path(src), Path(out))
        return _corrupt_table(Path(src), Path(out), fmt, caption_key, separator, c_args)
    raise DataError(f"corrupt-captions supports wds, csv, tsv, jsonl; got '{fmt}'")


__all__ = ["corrupt_captions", "MODES", "MANIFEST"]
