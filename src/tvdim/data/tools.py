"""``tvdim data inspect | convert | corrupt-captions | score-pairs``: functions plus their argparse registration.

``cli.py`` calls :func:`add_data_commands(subparsers)`; each handler returns an exit status (0 ok, 2 data error:
one line ``tvdim: error: ...``, also when a source has no usable sample or a pattern matches no file).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..config import DataConfig
from ..errors import DataError, TvdimError
from .formats.wds import DUPLICATE
from .sample import BadSample


def guess_format(path: str) -> str:
    """Format from a path: .csv/.tsv/.jsonl, .json (coco if it has 'annotations' else karpathy), shards -> wds,
    folder of class folders -> imagefolder, folder with *.tar -> wds, other folder -> caption folder ('folder')."""
    p = Path(path)
    if "{" in path or "::" in path or p.suffix in (".tar", ".gz"):
        return "wds"
    if p.suffix in (".csv", ".tsv", ".jsonl"):
        return p.suffix[1:]
    if p.suffix == ".json":
        return "coco" if '"annotations"' in p.read_text(errors="replace") else "karpathy"
    if p.is_dir():
        if any(p.glob("*.tar")):
            return "wds"
        return "folder" if any(p.rglob("*.txt")) else "imagefolder"
    return "csv"


def data_config(args: argparse.Namespace) -> DataConfig:
    fmt = args.format or guess_format(args.path)
    cfg = DataConfig(format=fmt, path=args.path, root=args.root, image_key=args.image_key,
                     caption_key=args.caption_key, label_key=args.label_key, separator=args.separator,
                     text_key=args.text_key, shuffle_buffer=0)
    return cfg


def open_source(cfg: DataConfig, split: str = "train") -> Any:
    """Unshuffled source for tools (``folder`` = images + same-name .txt)."""
    if cfg.format == "folder":
        from .formats.convert import CaptionFolder

        return CaptionFolder(cfg.path, cfg.max_image_pixels)
    from .sources import build_source

    return build_source(dataclasses.replace(cfg, shuffle_buffer=0, resampled=False), split)


# formats whose one file (or root) holds several splits: only for these does --split choose what is read
SPLIT_FORMATS = ("karpathy", "cifar10", "cifar100", "stl10")


def _split(fmt: str, split: str) -> str | None:
    """The split a tool reports: ``split`` for formats that hold several, None for a file that is one split."""
    return split if fmt in SPLIT_FORMATS else None


def _dist(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)
    return {"min": v[0], "median": statistics.median(v), "p95": v[min(len(v) - 1, int(0.95 * len(v)))], "max": v[-1]}


def inspect_data(cfg: DataConfig, split: str = "train", limit: int = 0) -> dict[str, Any]:
    """Counts, caption length (whitespace tokens) and image size distributions, first 20 unreadable samples."""
    from .sources import _items

    ds = open_source(cfg, split)
    n = good = n_caps = 0
    cap_lens: list[int] = []
    widths: list[int] = []
    heights: list[int] = []
    sizes: Counter = Counter()
    labels: Counter = Counter()
    bad: list[str] = []
    n_bad = n_dup = 0
    for s in _items(ds):
        if isinstance(s, BadSample):  # one record may stand for several lost samples (a short shard)
            n += s.count
            n_bad += s.count
            n_dup += s.reason.startswith(DUPLICATE)
            if len(bad) < 20:
                bad.append(f"{s.key}: {s.reason}")
        else:
            n += 1
            good += 1
            n_caps += len(s.captions)
            cap_lens.extend(len(c.split()) for c in s.captions)
            widths.append(s.image.width)
            heights.append(s.image.height)
            sizes[f"{s.image.width}x{s.image.height}"] += 1
            labels.update(str(v) for v in s.labels.values())
        if limit and n >= limit:
            break
    return {"path": cfg.path, "format": cfg.format, "split": _split(cfg.format, split), "items": n, "usable": good, "bad": n_bad,
            "captions": n_caps, "captions_per_image": round(n_caps / good, 3) if good else 0.0,
            "caption_tokens": _dist(cap_lens), "width": _dist(widths), "height": _dist(heights),
            "common_sizes": dict(sizes.most_common(5)), "classes": len(labels), "duplicates": n_dup,
            "outside_root": getattr(ds, "outside_root", 0), "unreadable": bad}


def _print_report(r: dict[str, Any]) -> None:
    where = f"{r['format']}, split {r['split']}" if r["split"] else r["format"]
    print(f"{r['path']} ({where}): {r['items']} items, {r['usable']} usable, {r['bad']} bad")
    print(f"  captions: {r['captions']} ({r['captions_per_image']} per image); tokens {r['caption_tokens']}")
    print(f"  image width {r['width']}, height {r['height']}; most common {r['common_sizes']}")
    if r["classes"]:
        print(f"  labels: {r['classes']} distinct values")
    if r.get("duplicates"):
        print(f"  duplicate keys: {r['duplicates']} (skipped, counted as bad)")
    if r.get("outside_root"):
        print(f"  image paths outside the image folder: {r['outside_root']} (read anyway)")
    for line in r["unreadable"]:
        print(f"  unreadable: {line}")


def cmd_inspect(args: argparse.Namespace) -> int:
    report = inspect_data(data_config(args), args.split, args.limit)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print_report(report)
    if not report["usable"]:
        first = f"; first: {report['unreadable'][0]}" if report["unreadable"] else ""
        raise DataError(f"no usable samples in {report['path']} ({report['items']} items){first}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .formats.convert import to_wds, wds_export

    cfg = data_config(args)
    if args.to == "wds":
        if cfg.format == "wds":
            raise TvdimError("source is already WebDataset; use --to csv or --to coco")
        res = to_wds(open_source(cfg, args.split), args.out, args.prefix, args.per_shard)
        if _split(cfg.format, args.split):  # one split of a file that holds several: say which, and how to get the rest
            res["split"] = args.split
            others = ", ".join(x for x in ("train", "val", "test") if x != args.split)
            res["note"] = (f"converted the {args.split} split only; the {cfg.format} source also has {others}: run "
                           f"again with --split SPLIT --prefix SPLIT into the same --out")
    else:
        if cfg.format != "wds":
            raise TvdimError(f"--to {args.to} converts from WebDataset shards; source format is {cfg.format}")
        text_key = args.text_key if args.text_key != "txt" else "json:captions"
        res = wds_export(args.path, args.out, args.to, text_key)
    print(json.dumps(res, indent=1))
    return 0


def cmd_corrupt(args: argparse.Namespace) -> int:
    from .formats.corrupt import corrupt_captions

    fmt = args.format or guess_format(args.path)
    res = corrupt_captions(args.path, args.out, fmt, args.mode, args.p, args.seed, args.caption_key, args.separator)
    print(json.dumps(res, indent=1))
    return 0


def guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except TvdimError as exc:
            print(f"tvdim: error: {exc}", file=sys.stderr)
            return 2
    return run


def source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="table / JSON file, shard pattern (brace notation) or folder")
    p.add_argument("--format", default="", help="csv|tsv|jsonl|coco|karpathy|wds|imagefolder|folder|cifar10|... "
                   "(default: guessed from the path)")
    p.add_argument("--root", default="", help="image root for tables / COCO (default: the file's folder)")
    p.add_argument("--image-key", default="filepath")
    p.add_argument("--caption-key", default="title")
    p.add_argument("--label-key", default="")
    p.add_argument("--separator", default=",")
    p.add_argument("--text-key", default="txt", help="WebDataset text: txt or json:FIELD")
    p.add_argument("--split", default="train", help="train | eval_train | test | val (karpathy)")


def add_data_commands(subparsers: Any) -> Any:
    """Register ``data {inspect,convert,corrupt-captions}``; handlers are stored as ``func`` (return int).
    Returns the ``data`` sub-command group, to which applications above this layer add theirs (score-pairs)."""
    data = subparsers.add_parser("data", help="inspect, convert or corrupt datasets")
    sub = data.add_subparsers(dest="data_command", required=True)
    p = sub.add_parser("inspect", help="counts, caption / image size distributions, unreadable files")
    source_args(p)
    p.add_argument("--limit", type=int, default=0, help="stop after this many items (0 = all)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=guard(cmd_inspect))
    p = sub.add_parser("convert", help="to WebDataset shards, or WebDataset to CSV / COCO")
    source_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--to", default="wds", choices=("wds", "csv", "coco"))
    p.add_argument("--prefix", default="data")
    p.add_argument("--per-shard", type=int, default=1000)
    p.set_defaults(func=guard(cmd_convert))
    p = sub.add_parser("corrupt-captions", help="copy of a dataset with noisy captions (seeded)")
    source_args(p)
    p.add_argument("--out", required=True, help="output folder (wds) or file (tables); never the input")
    p.add_argument("--mode", default="swap", choices=("swap", "shuffle-words", "drop"))
    p.add_argument("--p", type=float, default=0.2, help="rate at which samples are corrupted")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=guard(cmd_corrupt))
    return sub


__all__ = ["add_data_commands", "inspect_data", "guess_format", "open_source", "cmd_inspect", "cmd_convert",
           "cmd_corrupt", "data_config", "source_args", "guard"]
