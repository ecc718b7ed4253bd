"""``tvdim data score-pairs`` (an application on top of loading, data and eval): rank a dataset's image-text pairs
from most to least suspicious with a checkpoint.

The scores are defined in :mod:`tvdim.eval.pair_scores`; this module reads the data, embeds it and writes the file.
"""
from __future__ import annotations

import argparse
import json
import logging
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
from .eval.caption_retrieval import multi_caption_recall
from .eval.pair_scores import detection_metrics, pair_scores, read_manifest, separation, write_scores
from .loading import embed_texts, load_method
from .method_spec import text_methods

log = logging.getLogger("tvdim.data")


def _embed(loaded: Any, source: Any, device: str, batch: int, max_bad: float, progress: bool
           ) -> tuple[list[str], list[int], list[str], torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Every captioned pair: keys, source positions and captions (one entry per pair: an image with five captions
    gives five), ``[N, D]`` image features (repeated for each of an image's captions) and caption features."""
    enc, tf = loaded.method.image_encoder, eval_transform(loaded.config.model.image_size)
    tracker = SkipTracker(max_bad)
    keys, rows, caps, feats, pending, per_image = [], [], [], [], [], []

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
            for c in s.captions:
                keys.append(s.key)
                rows.append(i)
                caps.append(c)
            per_image.append(len(s.captions))
            pending.append(tf(s.image))
            if len(pending) == batch:
                flush()
                tracker.check()
        flush()
    tracker.check(final=True)
    if len(per_image) < 2:
        raise DataError(f"score-pairs needs at least 2 captioned images, found {len(per_image)}")
    txt = embed_texts(loaded.method.text_encoder, loaded.tokenizer, caps, batch).float().cpu()
    img = torch.cat(feats).repeat_interleave(torch.tensor(per_image), dim=0)
    return keys, rows, caps, img, txt, tracker.summary()


def _groups(keys: list[str], rows: list[int]) -> tuple[torch.Tensor, list[int]]:
    """``[N]`` image id of each pair (consecutive pairs from one source position share it) and each pair's caption
    index within its image."""
    group, index, image, nth = [], [], -1, 0
    for j, r in enumerate(rows):
        nth = nth + 1 if j and r == rows[j - 1] else 0
        image += nth == 0
        group.append(image)
        index.append(nth)
    return torch.tensor(group), index


def agreement_warning(img: torch.Tensor, txt: torch.Tensor, group: torch.Tensor, loss: torch.Tensor,
                      max_images: int = 1000) -> tuple[str, dict[str, float]]:
    """A warning ('' when none) when the checkpoint cannot tell right pairs from wrong ones, and the numbers behind
    it: the checkpoint's own image->text R@10 on (up to ``max_images`` images of) these pairs against chance, and the
    separation of the two-Gaussian fit of the losses (:func:`~tvdim.eval.pair_scores.separation`)."""
    first = torch.ones(len(group), dtype=torch.bool)
    first[1:] = group[1:] != group[:-1]
    keep = group < max_images
    rec = multi_caption_recall(img[first & keep], txt[keep], group[keep])
    d = separation(loss)
    level = {"i2t_R@10": rec["i2t_R@10"], "i2t_chance_R@10": rec["i2t_chance_R@10"], "separation": d}
    weak = rec["i2t_R@10"] < AGREES * rec["i2t_chance_R@10"]
    if d >= SEPARATED and not weak:
        return "", level
    why = (f"the losses do not split into right and wrong pairs (separation {d:.2f} < {SEPARATED})" if d < SEPARATED
           else f"this checkpoint barely matches its own pairs (under {AGREES:g}x chance)")
    return (f"{why}: it finds an image's own caption in its top 10 for {100 * rec['i2t_R@10']:.1f} % of images, "
            f"chance {100 * rec['i2t_chance_R@10']:.1f} %; treat the flags and clean_probability as unreliable, or "
            "score with a checkpoint that retrieves its own pairs better"), level


SEPARATED = 2.0  # Ashman's D above which two Gaussian modes are distinct
AGREES = 3.0  # own-pair R@10 over its chance level below which a checkpoint is too weak to audit with


def score_pairs(checkpoint: str, cfg: DataConfig, out: str | Path, manifest: str = "", device: str = "cpu",
                batch: int = 256, overwrite: bool = False, progress: bool = True,
                split: str = "eval_train") -> dict[str, Any]:
    """Score every pair of ``cfg``'s ``split`` (read unshuffled; ``eval_train`` = ``data.path``; every caption of
    every image, ``caption_index`` numbering an image's captions) and write them sorted, most suspicious first.
    ``manifest``: a ``corrupted.json`` (default: the one beside WebDataset shards, if any) to score the detector
    against (a listed key flags every caption of that image). The output folder is created. Returns the summary
    (pairs, images, skipped samples, output, the checkpoint's agreement level, a warning when it cannot tell,
    detection metrics)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise TvdimError(f"{out} exists; pass --overwrite to replace it")
    loaded = load_method(checkpoint, device)
    if loaded.method.text_encoder is None or loaded.tokenizer is None:
        raise TvdimError(f"{checkpoint} was trained with '{loaded.config.train.method}', which has no text encoder; "
                         f"score-pairs needs a {text_methods()} checkpoint")
    if not manifest and cfg.format == "wds":
        beside = Path(expand_urls(cfg.path)[0]).parent / MANIFEST
        manifest = str(beside) if beside.is_file() else ""
    source = open_source(cfg, split)
    keys, rows, caps, img, txt, skipped = _embed(loaded, source, device, batch, cfg.max_bad_fraction, progress)
    group, index = _groups(keys, rows)
    scores = pair_scores(img, txt, loaded.config.loss.margin, group=group)
    warning, level = agreement_warning(img, txt, group, scores["loss"])
    corrupted = None
    if manifest:
        bad, kind = read_manifest(manifest)
        ids = [str(r) for r in rows] if kind == "row" else keys
        corrupted = torch.tensor([k in bad for k in ids])
    order = torch.sort(-scores["loss"].double(), stable=True).indices.tolist()
    records = []
    for i in order:
        rec: dict[str, Any] = {"key": keys[i], "caption_index": index[i], "caption": caps[i]}
        rec.update({name: round(float(v[i]), 6) for name, v in scores.items()})
        if corrupted is not None:
            rec["corrupted"] = bool(corrupted[i])
        records.append(rec)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_scores(records, out)
    summary: dict[str, Any] = {"pairs": len(keys), "images": int(group[-1]) + 1, "skipped": skipped,
                               "output": str(out), "agreement": level}
    if warning:
        summary["warning"] = warning
        log.warning("score-pairs: %s", warning)
    if corrupted is not None:
        summary["manifest"] = manifest
        summary["detection"] = detection_metrics(scores["loss"], corrupted)
    return summary


def cmd_score_pairs(args: argparse.Namespace) -> int:
    split = "eval_train" if args.split == "train" else args.split  # every pair, in file order
    summary = score_pairs(args.checkpoint, data_config(args), args.out, args.manifest, args.device, args.batch,
                          args.overwrite, not args.quiet, split)
    print(json.dumps(summary, indent=1))
    if summary.get("warning"):
        print(f"warning: {summary['warning']}", file=sys.stderr)
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
