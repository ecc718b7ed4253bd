"""``tvdim data score-pairs`` (an application on top of loading, data and eval): rank a dataset's image-text pairs
from most to least suspicious with a checkpoint.

The scores are defined in :mod:`tvdim.eval.pair_scores`; this module reads the data, embeds it and writes the file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .config import DataConfig
from .data.formats.corrupt import MANIFEST
from .data.formats.wds import expand_urls
from .data.quality import SkipTracker
from .data.sample import BadSample
from .data.tools import data_config, open_source
from .data.transforms import eval_transform
from .errors import DataError, TvdimError
from .eval.pair_scores import detection_metrics, pair_scores, read_manifest, write_scores
from .loading import embed_texts, load_method
from .method_spec import text_methods


def _embed(loaded: Any, source: Any, device: str, batch: int, max_bad: float, progress: bool
           ) -> tuple[list[str], list[int], list[str], torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Keys, source positions, captions and ``[N, D]`` image / text features of every usable captioned pair."""
    enc, tf = loaded.method.image_encoder, eval_transform(loaded.config.model.image_size)
    tracker = SkipTracker(max_bad)
    keys, rows, caps, feats, pending = [], [], [], [], []

    def flush() -> None:
        if pending:
            x = torch.stack(pending).to(device)
            feats.append(enc(x).r1.float().cpu())
            pending.clear()

    with torch.no_grad():
        bar_off = not progress or not sys.stderr.isatty()  # no bar redraws into a log file
        for i in tqdm(range(len(source)), desc="score-pairs", disable=bar_off, dynamic_ncols=True):
            s = source[i]
            if isinstance(s, BadSample):
                tracker.bad(s.key, s.reason, s.count)
                continue
            if not s.captions:
                tracker.bad(s.key, "no caption (nothing to score)")
                continue
            tracker.ok()
            keys.append(s.key)
            rows.append(i)
            caps.append(s.captions[0])
            pending.append(tf(s.image))
            if len(pending) == batch:
                flush()
                tracker.check()
        flush()
    tracker.check(final=True)
    if len(keys) < 2:
        raise DataError(f"score-pairs needs at least 2 captioned images, found {len(keys)}")
    txt = embed_texts(loaded.method.text_encoder, loaded.tokenizer, caps, batch).float().cpu()
    return keys, rows, caps, torch.cat(feats), txt, tracker.summary()


def score_pairs(checkpoint: str, cfg: DataConfig, out: str | Path, manifest: str = "", device: str = "cpu",
                batch: int = 256, overwrite: bool = False, progress: bool = True,
                split: str = "eval_train") -> dict[str, Any]:
    """Score every pair of ``cfg``'s ``split`` (read unshuffled; ``eval_train`` = ``data.path``) and write them
    sorted, most suspicious first. ``manifest``: a ``corrupted.json`` (default: the one beside WebDataset shards, if any) to score the
    detector against. Returns the summary (pairs, skipped samples, output, detection metrics)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise TvdimError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise TvdimError(f"output folder {out.parent} does not exist")
    loaded = load_method(checkpoint, device)
    if loaded.method.text_encoder is None or loaded.tokenizer is None:
        raise TvdimError(f"{checkpoint} was trained with '{loaded.config.train.method}', which has no text encoder; "
                         f"score-pairs needs a {text_methods()} checkpoint")
    if not manifest and cfg.format == "wds":
        beside = Path(expand_urls(cfg.path)[0]).parent / MANIFEST
        manifest = str(beside) if beside.is_file() else ""
    source = open_source(cfg, split)
    keys, rows, caps, img, txt, skipped = _embed(loaded, source, device, batch, cfg.max_bad_fraction, progress)
    scores = pair_scores(img, txt, loaded.config.loss.margin)
    corrupted = None
    if manifest:
        bad, kind = read_manifest(manifest)
        ids = [str(r) for r in rows] if kind == "row" else keys
        corrupted = torch.tensor([k in bad for k in ids])
    order = torch.sort(-scores["loss"].double(), stable=True).indices.tolist()
    records = []
    for i in order:
        rec: dict[str, Any] = {"key": keys[i], "caption": caps[i]}
        rec.update({name: round(float(v[i]), 6) for name, v in scores.items()})
        if corrupted is not None:
            rec["corrupted"] = bool(corrupted[i])
        records.append(rec)
    write_scores(records, out)
    summary: dict[str, Any] = {"pairs": len(keys), "skipped": skipped, "output": str(out)}
    if corrupted is not None:
        summary["manifest"] = manifest
        summary["detection"] = detection_metrics(scores["loss"], corrupted)
    return summary


def cmd_score_pairs(args: argparse.Namespace) -> int:
    split = "eval_train" if args.split == "train" else args.split  # every pair, in file order
    summary = score_pairs(args.checkpoint, data_config(args), args.out, args.manifest, args.device, args.batch,
                          args.overwrite, not args.quiet, split)
    print(json.dumps(summary, indent=1))
    return 0


def add_score_pairs(sub: Any, source_args: Any, guard: Any) -> None:
    p = sub.add_parser("score-pairs", help="rank image-text pairs from most to least suspicious with a checkpoint "
                       "(caption-noise detector)")
    p.add_argument("checkpoint", help="checkpoint of a text method (tvdim, tvdim-nce, clip)")
    source_args(p)
    p.add_argument("--out", required=True, help="output file: .jsonl, or .csv for anything else")
    p.add_argument("--manifest", default="", help="corrupted.json to score the detector against (default: the one "
                   "beside the shards, if present)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=guard(cmd_score_pairs))


__all__ = ["score_pairs", "cmd_score_pairs", "add_score_pairs"]
