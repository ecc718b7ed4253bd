"""The ``tvdim`` command: pretrain, evaluate, export, embed, demo, data, config."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml

from .config import Config, from_dict, load_config, merge, parse_override, read_yaml, to_plain, validate
from .method_spec import METHOD_SPECS
from .errors import TvdimError

OVERRIDE_HELP = "config overrides as section.key=value, e.g. train.steps=100 model.ndf=64"


def _pretrain(args: argparse.Namespace) -> int:
    from .train.checkpoint import load_checkpoint, resolve_resume
    from .train.trainer import pretrain

    extra = list(args.overrides)
    if args.method:
        extra.append(f"train.method={args.method}")
    if args.out:
        extra.append(f"train.out_dir={args.out}")
    cfg = load_config(args.config, extra)
    ckpt = resolve_resume(args.resume, cfg.train.out_dir)
    if ckpt is not None:  # continue the saved config: only what this command line sets may change
        saved = load_checkpoint(ckpt, ("config",), mmap=True)["config"]
        cfg = load_config(args.config, extra, base=saved)
    res = pretrain(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"{'stopped' if res.stopped_early else 'finished'} at step {res.step}; checkpoint: {res.checkpoint}")
    return 0


def _eval_config(args: argparse.Namespace, base: Config) -> Config:
    """The checkpoint's config with the evaluation's --config file and overrides on top."""
    cfg = from_dict(to_plain(base))
    if args.config:
        merge(cfg, read_yaml(args.config))
    for o in args.overrides:
        merge(cfg, parse_override(o))
    return validate(cfg)


def _evaluate(args: argparse.Namespace) -> int:
    from .api import load_method
    from .eval.evaluate import evaluate, markdown_table

    if args.out:  # an unwritable --out fails now, not after the evaluation
        Path(args.out).mkdir(parents=True, exist_ok=True)
    loaded = load_method(args.checkpoint, args.device)  # read once
    cfg = _eval_config(args, loaded.config)
    res = evaluate(loaded, cfg.data, cfg.eval, args.out, device=args.device)
    print(markdown_table({res["method"]: res}))
    if args.out:
        print(f"results: {args.out}/results.json")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .hub import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite, results=args.results)
    print(f"exported to {out} (load with tvdim.from_pretrained({str(out)!r}))")
    return 0


def _embed(args: argparse.Namespace) -> int:
    from .embed import embed_to_file

    cfg = load_config(None, args.overrides + ([f"data.root={args.root}"] if args.root else []))
    res = embed_to_file(args.model, args.data, args.out, text=args.text, kind=args.format, data_cfg=cfg.data,
                        batch_size=args.batch_size, device=args.device, workers=args.workers,
                        progress=not args.no_progress, split=args.split)
    sk = res["skipped"]
    print(f"embedded {res['n']} {res['what']} ({res['dim']} dims) -> {', '.join(res['files'])}; "
          f"skipped {sk['bad']} unusable" + (f" (first: {'; '.join(sk['first_reasons'])})" if sk["bad"] else ""))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_METHODS, run_demo

    methods = tuple(args.methods.split(",")) if args.methods else DEMO_METHODS
    results = run_demo(args.out, args.overrides, methods, resume=args.resume)
    return 0 if results is not None else 1  # 1: stopped by a signal, nothing reported


def _config(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    print(yaml.safe_dump(to_plain(cfg), sort_keys=False) if not args.json else json.dumps(to_plain(cfg), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .data.tools import add_data_commands, guard, source_args
    from .score_pairs import add_score_pairs

    p = argparse.ArgumentParser(prog="tvdim", description="Text-enhanced Visual Deep InfoMax: pretrain image "
                                "encoders from noisy image-text pairs, then evaluate them.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("pretrain", help="pretrain an image encoder (" + ", ".join(
        n for n, spec in METHOD_SPECS.items() if spec.trained) + ")")
    s.add_argument("--config", help="YAML config file")
    s.add_argument("--method", help="shortcut for train.method=...: " + "; ".join(
        f"{n}: {spec.display}" for n, spec in METHOD_SPECS.items()))
    s.add_argument("--out", help="shortcut for train.out_dir=...")
    s.add_argument("--resume", help="'latest' (the run folder's last checkpoint) or a checkpoint path; the "
                   "saved config is used, with the --config file and overrides given here on top")
    s.add_argument("--overwrite", action="store_true",
                   help="start again in a run folder that holds a run (its checkpoints and logs are deleted)")
    s.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    s.set_defaults(func=_pretrain)

    s = sub.add_parser("evaluate", help="linear / MLP / k-NN probes and retrieval on a frozen encoder")
    s.add_argument("checkpoint", help="checkpoint written by tvdim pretrain")
    s.add_argument("--config", help="YAML with data / eval sections (default: the checkpoint's own)")
    s.add_argument("--out", help="folder for results.json and results.md")
    s.add_argument("--device", default="cpu")
    s.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("export", help="write a checkpoint's encoders as safetensors + config.json + tokenizer + "
                       "model card (load with tvdim.from_pretrained)")
    s.add_argument("checkpoint", help="checkpoint written by tvdim pretrain")
    s.add_argument("--out", required=True, help="export folder (refused when not empty, unless --overwrite)")
    s.add_argument("--overwrite", action="store_true", help="replace the export files in a non-empty --out")
    s.add_argument("--results", help="results.json for the model card (default: RUN/eval/ or RUN/results.json)")
    s.set_defaults(func=_export)

    s = sub.add_parser("embed", help="image (or --text caption) features of a folder, table, shards or text file")
    s.add_argument("model", help="export folder (tvdim export) or checkpoint")
    s.add_argument("data", help="what pretrain reads (a .csv/.tsv/.jsonl table, a COCO or Karpathy .json, shards: "
                   ".tar, brace notation, an image folder); with --text also a plain .txt file, one caption a line")
    s.add_argument("--out", required=True, help="FILE.npy (+ FILE.keys.txt) or FILE.parquet (needs pyarrow)")
    s.add_argument("--text", action="store_true", help="embed captions with the text encoder instead of images")
    s.add_argument("--format", default="auto", help="what DATA is: a data.format (csv, tsv, jsonl, coco, karpathy, "
                   "wds, imagefolder, ...), folder (every image below it) or lines (text); default: guessed")
    s.add_argument("--root", default="", help="image folder of a table / COCO / Karpathy file, as data.root "
                   "(default: the file's folder)")
    s.add_argument("--split", default="train", help="entries of a file that holds several splits (Karpathy: train, "
                   "val, test)")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    s.add_argument("--workers", type=int, default=0, help="image-decoding processes")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("overrides", nargs="*", help="data.* keys for the reader, e.g. data.root=images/ "
                   "data.image_key=path data.caption_key=caption data.max_bad_fraction=0.2")
    s.set_defaults(func=_embed)

    s = sub.add_parser("demo", help="random / amdim / clip / tvdim on the built-in data, with a report")
    s.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    s.add_argument("--methods", help="comma-separated subset, e.g. amdim,tvdim")
    s.add_argument("--resume", action="store_true",
                   help="continue a demo stopped by a signal (finished runs are kept, not retrained)")
    s.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    s.set_defaults(func=_demo)

    s = sub.add_parser("config", help="print the full config (defaults <- file <- overrides)")
    s.add_argument("--config", help="YAML config file")
    s.add_argument("--json", action="store_true")
    s.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    s.set_defaults(func=_config)

    add_score_pairs(add_data_commands(sub), source_args, guard)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come after options (``evaluate CKPT --out DIR data.path=...``)
    args, rest = parser.parse_known_args(argv)
    extra = [r for r in rest if "=" in r and not r.startswith("-")]
    if len(extra) != len(rest) or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: Any = args.func(args)
    except TvdimError as exc:
        print(f"tvdim: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable or non-directory output, full disk, ...: the file and the reason
        if args.verbose:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        print(f"tvdim: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tvdim: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
