"""End-to-end pretraining rate: images/s of the real trainer on real data against the step rate of the same config.

For each ``--workers`` value, runs the real trainer (``tvdim.train.trainer.pretrain``, as ``tvdim pretrain``
does) for ``--steps`` steps on RSICD (WebDataset shards under ``--data``; the pipeline resizes the 96 px images
to ``--size``) or on the built-in synthetic data (``--data synthetic``), and reads the run's ``metrics.jsonl``:
the end-to-end rate is the steady state, samples over seconds of every logged interval but the first (the first
holds worker start-up and warm-up); the data-wait fraction is the time the loop waited for the next batch over
the same intervals. The step rate is the same configuration's training step (same method, model, batch,
precision, channels_last, optimizer, grad scaler and text-gradient clipping as the trainer) on synthetic inputs
already on the device, median over ``--bench-steps`` steps. Prints, per row: e2e img/s, step img/s, their
ratio, data-wait %, and where a step's time goes (ms per step: waiting for data, the step itself, the rest =
host-to-device copy, logging, augmentation on the device if any, ...). Writes JSON (device, torch, date, args).

    PYTHONPATH=src python benchmarks/e2e.py --data ../shared/data --size 32 --batch 64 --workers 0,1 \\
        --method tvdim --ndf 32 --n-rkhs 256 --n-depth 1 --steps 60 --log-every 10

``--set key=value ...`` passes config overrides to both measurements (e.g. ``data.augment=device``);
``--workers auto`` leaves ``data.workers`` unset (the config's default).
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch

from tvdim.config import Config, load_config, replace
from tvdim.data.sources import build_source, caption_corpus
from tvdim.methods import build_method, uses_text
from tvdim.models.tokenizer import CaptionTokenizer
from tvdim.train.device import autocast, configure_backends, resolve_compile, resolve_device, resolve_precision
from tvdim.distributed import DistInfo
from tvdim.train.trainer import build_optimizer, build_tokenizer, optimizer_step, pretrain, source_tasks

RSICD_TRAIN = "rsicd/rsicd-train-{000000..000008}.tar"


def steady_state(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Steady-state rate of a run from its ``metrics.jsonl`` records.

    Each step record (one with ``samples_per_s``) covers the interval since the previous one: its samples are the
    difference of ``samples_seen``, its seconds ``samples / samples_per_s``, and ``data_wait_s`` the time the loop
    waited for data in it. The first interval (up to the first record, which a run writes after its first step:
    worker start-up, warm-up) is dropped; the rest are pooled:
    ``samples_per_s = sum(samples) / sum(seconds)``, ``data_wait_fraction = sum(data_wait_s) / sum(seconds)``.
    Other records (``data_quality``, ``stopped``) are ignored. Needs at least two step records.
    """
    steps = sorted((r for r in records if r.get("samples_per_s") is not None), key=lambda r: r["step"])
    if len(steps) < 2:
        raise ValueError(f"need at least two logged intervals (the first is warm-up), got {len(steps)}: "
                         "raise --steps or lower --log-every")
    samples = seconds = wait = 0.0
    for prev, rec in zip(steps, steps[1:]):
        n = rec["samples_seen"] - prev["samples_seen"]
        samples += n
        seconds += n / rec["samples_per_s"]
        wait += rec["data_wait_s"]
    return {"samples_per_s": samples / seconds, "data_wait_fraction": wait / seconds, "seconds": seconds,
            "samples": samples, "intervals": len(steps) - 1, "first_interval_samples_per_s": steps[0]["samples_per_s"]}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def base_overrides(args: argparse.Namespace) -> list[str]:
    """Config overrides shared by every row (data, model, recipe), ``--set`` last."""
    if args.data == "synthetic":
        data = ["data.format=synthetic"]
    else:
        shards = Path(args.data) / RSICD_TRAIN
        data = ["data.format=wds", f"data.path={shards}", "data.text_key=txt"]
    return data + [f"train.method={args.method}", f"model.image_size={args.size}", f"model.ndf={args.ndf}",
                   f"model.n_rkhs={args.n_rkhs}", f"model.n_depth={args.n_depth}", f"text.dim={args.text_dim}",
                   f"train.batch_size={args.batch}", f"train.steps={args.steps}", f"train.log_every={args.log_every}",
                   f"train.ckpt_every={args.steps}", f"train.device={args.device}", f"train.precision={args.precision}",
                   "train.progress=false", *args.set]


def e2e_run(cfg: Config, out: Path) -> dict[str, Any]:
    """One real pretraining run in ``out``; its steady state (:func:`steady_state`) and wall time."""
    t0 = time.perf_counter()
    res = pretrain(cfg, overwrite=True)
    wall = time.perf_counter() - t0
    if res.stopped_early:
        raise SystemExit("e2e: the run was stopped by a signal")
    return {**steady_state(read_metrics(out / "metrics.jsonl")), "wall_s": wall}


def synthetic_batch(cfg: Config, tokenizer: CaptionTokenizer | None, tasks: dict[str, list[str]],
                    device: torch.device) -> dict[str, Any]:
    """A batch shaped like the trainer's (two views, captions, labels), on ``device``: random images, real
    captions of the training data (tokenised as in training), random labels of the data's label tasks."""
    n, size = cfg.train.batch_size, cfg.model.image_size
    g = torch.Generator().manual_seed(0)
    fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
    batch: dict[str, Any] = {"n": n, "x1": torch.randn(n, 3, size, size, generator=g).to(device, memory_format=fmt),
                             "x2": torch.randn(n, 3, size, size, generator=g).to(device, memory_format=fmt),
                             "has_text": (torch.rand(n, generator=g) < cfg.data.paired_fraction).to(device),
                             "labels": {t: torch.randint(len(names), (n,), generator=g).to(device)
                                        for t, names in tasks.items()}}
    if tokenizer is not None:
        caps = caption_corpus(cfg.data, max_n=n) or ["an image"]
        ids, mask = tokenizer(list(itertools.islice(itertools.cycle(caps), n)))
        batch["ids"], batch["mask"] = ids.to(device), mask.to(device)
    return batch


def step_rate(cfg: Config, steps: int, warmup: int) -> dict[str, Any]:
    """Median training-step time of ``cfg`` on a batch already on the device (the trainer's step, no data)."""
    device = resolve_device(cfg.train.device)
    configure_backends(device)
    precision = resolve_precision(cfg.train.precision, device)
    torch.manual_seed(cfg.train.seed)
    text_on = uses_text(cfg)
    tasks = source_tasks(build_source(cfg.data, "train", cfg.model.image_size, require_text=text_on), cfg.data)
    tokenizer = None
    if text_on:  # the trainer's choice (pretrained tower's, text.tokenizer_path, else one trained on the captions)
        with tempfile.TemporaryDirectory(prefix="tvdim-e2e-tok-") as tmp:
            tokenizer = build_tokenizer(cfg, DistInfo(), Path(tmp))
    method = build_method(cfg, {t: len(v) for t, v in tasks.items()}, tokenizer.vocab_size if tokenizer else None)
    if cfg.model.channels_last:
        method = method.to(memory_format=torch.channels_last)
    method.to(device).train()
    opt = build_optimizer(method, cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    model: Any = torch.compile(method) if resolve_compile(cfg.train.compile, device) else method
    text_params = list(method.text_encoder.parameters()) if method.text_encoder is not None else []
    batch = synthetic_batch(cfg, tokenizer, tasks, device)

    def step() -> None:  # the trainer's step body (tvdim.train.trainer._run), without data and logging
        with autocast(precision, device):
            res = model(batch)
        if not torch.isfinite(res.loss):
            raise SystemExit(f"e2e: non-finite loss in the step benchmark ({res.loss.item()})")
        optimizer_step(res.loss, opt, scaler, text_params, cfg.optim.text_grad_clip)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"median_step_s": med, "samples_per_s": cfg.train.batch_size / med, "precision": precision,
            "step_times": times, "tasks": list(tasks)}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def row(size: int, batch: int, workers: str, e2e: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    """One table row: rates, their ratio, and where a step's time goes (seconds per step)."""
    e2e_step_s = batch / e2e["samples_per_s"]
    wait_s = e2e["data_wait_fraction"] * e2e_step_s
    return {"size": size, "batch": batch, "workers": workers, "e2e_samples_per_s": e2e["samples_per_s"],
            "step_samples_per_s": step["samples_per_s"], "ratio": e2e["samples_per_s"] / step["samples_per_s"],
            "data_wait_fraction": e2e["data_wait_fraction"], "e2e_s_per_step": e2e_step_s, "wait_s_per_step": wait_s,
            "compute_s_per_step": step["median_step_s"],
            "other_s_per_step": e2e_step_s - wait_s - step["median_step_s"], "e2e": e2e}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data",
                   help="folder holding rsicd/ (WebDataset shards), or 'synthetic' for the built-in data")
    p.add_argument("--size", type=int, default=64, choices=(32, 64, 128))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", default="0,1,2,4",
                   help="comma-separated data.workers values; 'auto' = leave data.workers to the config")
    p.add_argument("--method", default="tvdim", choices=("amdim", "tvdim"))
    p.add_argument("--steps", type=int, default=60, help="training steps of each end-to-end run")
    p.add_argument("--log-every", dest="log_every", type=int, default=10,
                   help="train.log_every: the interval the rate is measured over (the first is dropped)")
    p.add_argument("--bench-steps", dest="bench_steps", type=int, default=10, help="timed steps of the step rate")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the step rate")
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--n-rkhs", dest="n_rkhs", type=int, default=256)
    p.add_argument("--n-depth", dest="n_depth", type=int, default=1)
    p.add_argument("--text-dim", dest="text_dim", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--set", nargs="*", default=[], help="config overrides for every run, e.g. data.augment=device")
    p.add_argument("--out", default="benchmarks/out/e2e.json")
    args = p.parse_args(argv)
    if args.steps < 2 * args.log_every:
        p.error(f"--steps ({args.steps}) must be at least 2 x --log-every ({args.log_every}): the first interval "
                "is warm-up")
    if any(o.split("=", 1)[0].strip() == "data.workers" for o in args.set):
        p.error("give data.workers with --workers, not --set")
    if args.data != "synthetic" and not (Path(args.data) / "rsicd").is_dir():
        p.error(f"no rsicd/ folder under --data {args.data} (or give --data synthetic)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    base = base_overrides(args)
    workers = [w.strip() for w in args.workers.split(",") if w.strip()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tvdim-e2e-") as tmp:
        tokenizer_file: Path | None = None
        cfg = None
        for w in workers:
            out = Path(tmp) / f"workers-{w}"
            extra = [] if w == "auto" else [f"data.workers={int(w)}"]
            if tokenizer_file is not None:  # same data, same tokenizer: train it once
                extra.append(f"text.tokenizer_path={tokenizer_file}")
            cfg = load_config(overrides=base + extra + [f"train.out_dir={out}"])
            print(f"e2e run: workers={w} (data.workers={cfg.data.workers}), {args.steps} steps ...", flush=True)
            e2e = e2e_run(cfg, out)
            e2e["data_workers"] = cfg.data.workers
            rows.append(e2e)
            if tokenizer_file is None and (out / "tokenizer.json").is_file():
                tokenizer_file = out / "tokenizer.json"
        assert cfg is not None, "no --workers given"
        print("step rate on synthetic inputs on the device ...", flush=True)
        if tokenizer_file is not None:  # the runs' tokenizer, so the text tower has the runs' vocabulary
            cfg = replace(cfg, text={"tokenizer_path": str(tokenizer_file)})
        step = step_rate(cfg, args.bench_steps, args.warmup)
    device = resolve_device(cfg.train.device)
    table = [row(args.size, args.batch, w, e2e, step) for w, e2e in zip(workers, rows)]
    name = device_name(device)
    print(f"\ndevice: {name}; torch {torch.__version__}; method {args.method}, precision {step['precision']}, "
          f"{args.steps} steps, rate over steps {args.log_every + 1}-{args.steps}")
    print(f"{'size':>4} {'batch':>5} {'workers':>7} {'e2e img/s':>10} {'step img/s':>10} {'e2e/step':>8} "
          f"{'wait %':>7} | ms/step: {'e2e':>7} {'wait':>7} {'step':>7} {'other':>7}")
    for r in table:
        print(f"{r['size']:>4} {r['batch']:>5} {r['workers']:>7} {r['e2e_samples_per_s']:>10.1f} "
              f"{r['step_samples_per_s']:>10.1f} {r['ratio']:>8.3f} {100 * r['data_wait_fraction']:>6.1f}% | "
              f"{'':>8} {1e3 * r['e2e_s_per_step']:>7.1f} {1e3 * r['wait_s_per_step']:>7.1f} "
              f"{1e3 * r['compute_s_per_step']:>7.1f} {1e3 * r['other_s_per_step']:>7.1f}")
    result = {"device": name, "torch": torch.__version__, "date": datetime.now(timezone.utc).isoformat(),
              "args": vars(args), "overrides": base, "step": step, "rows": table}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
