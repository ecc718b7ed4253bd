"""The one training loop every method runs through (``tvdim pretrain``)."""
from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from .. import distributed as dist_utils
from ..config import Config, DataConfig, resolve_batch, resolve_size, to_plain
from ..data.classes import label_tasks
from ..data.device_aug import DeviceViews, step_seed
from ..data.pipeline import batches, next_batch
from ..data.quality import SkipTracker
from ..data.cache import CachedSource
from ..data.sources import build_source
from ..errors import CheckpointError, ConfigError, NonFiniteLossError, TvdimError
from ..method_spec import METHOD_SPECS
from ..methods import build_method, uses_text
from ..models.backbones import load_initial_weights
from .checkpoint import FOR_RESUME, load_checkpoint, nonfinite_tensors, resolve_resume, rng_state, save_checkpoint, set_rng_state
from .compiled import CompiledStep
from .device import autocast, configure_backends, resolve_augment, resolve_compile, resolve_device, resolve_precision, resolve_workers
from .loader import build_tokenizer, cache_source, make_loader, to_device
from .optim import build_optimizer, optimizer_step
from .progress import Progress
from .rundir import RunLock, prepare_run_dir, resume_changes
from .runlog import STEPS, RunLogger, close_logging, setup_logging
from .schedule import build_scheduler, lr_factor, schedule_warnings
from .signals import StopFlag, StopWaiting

log = logging.getLogger("tvdim.train")
steps_log = logging.getLogger(STEPS)


@dataclass
class PretrainResult:
    out_dir: Path
    checkpoint: Path
    step: int
    stopped_early: bool = False


def source_tasks(source: Any, data: DataConfig | None = None) -> dict[str, list[str]]:
    """Label tasks of the training source (task -> class names), found by :func:`tvdim.data.classes.label_tasks`:
    its ``tasks`` / ``classes``, a ``classes.json`` beside its files, else classes counted from the labels it
    carries (tables with ``data.label_key``, COCO / Karpathy labels, ``.cls`` members of shards). Empty when the
    data has no label (the online probes are then off)."""
    return label_tasks(source, data, "train")


def pretrain(cfg: Config, resume: str | None = None, overwrite: bool = False) -> PretrainResult:
    """Pretrain ``cfg.train.method``; write logs and checkpoints under ``cfg.train.out_dir``.

    ``resume``: ``"latest"`` or a checkpoint path; the run continues exactly where it stopped (same data order,
    augmentations and RNG for map-style data). Changed settings must be harmless ones (steps, logging, data
    paths, ...: see :mod:`tvdim.train.rundir`); a changed method, model or recipe is a :class:`ConfigError`.
    ``overwrite``: start afresh in a folder that holds a run, deleting its checkpoints and logs; without it (or
    ``resume``), such a folder is a :class:`ConfigError`.

    Raises :class:`NonFiniteLossError` on a NaN/inf loss or weights; the last good checkpoint is kept, and a
    checkpoint with non-finite weights is never written. Why a run stopped (error or signal) is written to
    ``train.log`` and ``metrics.jsonl``.
    """
    out = Path(cfg.train.out_dir)
    if resume and overwrite:
        raise ConfigError("give resume or overwrite, not both")
    ckpt_path = resolve_resume(resume, out)
    state = load_checkpoint(ckpt_path, FOR_RESUME) if ckpt_path else None
    # model.size / train.batch_size auto: from the device (or the run being resumed); stored resolved
    gpu = resolve_device(cfg.train.device, 0).type == "cuda"
    cfg, size_note = resolve_size(cfg, gpu, state["config"].get("model") if state is not None else None)
    cfg, batch_note = resolve_batch(cfg, gpu, state["config"].get("train", {}).get("batch_size") if state else None)
    notes = resume_changes(state["config"], cfg, ckpt_path) if state is not None else []
    notes += [size_note, batch_note]
    if state is not None:
        bad = nonfinite_tensors(state["model"])
        if bad:
            raise CheckpointError(f"cannot resume from {ckpt_path}: {len(bad)} weight tensors hold NaN or infinite "
                                  f"values (e.g. {', '.join(bad[:3])})")
    device = resolve_device(cfg.train.device, 0)
    dinfo = dist_utils.init_distributed(device.type)
    if dinfo.world_size > 1 and device.type == "cuda":
        device = torch.device(f"cuda:{dinfo.local_rank}")
        torch.cuda.set_device(device)
    configure_backends(device)
    lock = RunLock(out) if dinfo.is_main else None  # one writer per run folder; released on every exit below
    handler = None
    try:
        if lock is not None:
            notes = lock.acquire() + notes
            notes += prepare_run_dir(out, int(state["step"]) if state else None, bool(resume), overwrite)
            (out / "config.json").write_text(json.dumps(to_plain(cfg), indent=2))
        handler = setup_logging(out if dinfo.is_main else None)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    status = {"step": int(state["step"]) if state else 0}
    try:
        log.info("%s: method %s, %d steps, batch %d x %d process(es), device %s, out %s",
                 f"resuming {ckpt_path}" if state else "starting", cfg.train.method, cfg.train.steps,
                 cfg.train.batch_size, dinfo.world_size, device, out)
        for note in notes:
            log.info("%s", note)
        res = _run(cfg, out, device, dinfo, ckpt_path, state, status)
        log.info("%s at step %d; checkpoint: %s", "stopped by a signal" if res.stopped_early else "finished",
                 res.step, res.checkpoint)
        return res
    except TvdimError as exc:  # the reason goes where the run's history is
        log.error("run stopped at step %d: %s", status["step"], exc)
        if dinfo.is_main and out.is_dir():
            with contextlib.suppress(OSError):
                RunLogger(out, tensorboard=False).write({"step": status["step"], "stopped": type(exc).__name__,
                                                         "reason": str(exc)}, status["step"])
        raise
    finally:
        close_logging(handler)
        if lock is not None:
            lock.release()


def _run(cfg: Config, out: Path, device: torch.device, dinfo: dist_utils.DistInfo, ckpt_path: Path | None,
         state: dict[str, Any] | None, status: dict[str, int]) -> PretrainResult:
    precision = resolve_precision(cfg.train.precision, device)
    torch.manual_seed(cfg.train.seed)

    text_on = uses_text(cfg)
    source = build_source(cfg.data, "train", cfg.model.image_size, require_text=text_on)
    tasks = source_tasks(source, cfg.data)
    source, cache_note = cache_source(cfg, source, text_on, dinfo)
    log.info("%s", cache_note)
    tokenizer = build_tokenizer(cfg, dinfo, out, state.get("tokenizer") if state else None) if text_on else None
    method = build_method(cfg, {t: len(names) for t, names in tasks.items()}, tokenizer.vocab_size if tokenizer else None)
    if cfg.model.init and state is None:  # a resumed run takes its weights from the checkpoint
        load_initial_weights(method.image_encoder, cfg.model.init)
    if cfg.model.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if dinfo.world_size > 1:  # global-batch BatchNorm keeps N ranks equivalent to one process on the same batch
        dist_utils.convert_global_bn(method, device.type)
    method.to(device)
    opt = build_optimizer(method, cfg, device)
    sched = build_scheduler(opt, cfg.train.steps, cfg.optim.warmup_steps, cfg.optim.decay_at, cfg.optim.decay_factor)
    if dinfo.is_main:
        for warning in schedule_warnings(cfg.train.steps, cfg.optim.warmup_steps, cfg.optim.decay_at,
                                         cfg.optim.decay_factor):
            log.warning("%s", warning)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    step, seen = 0, 0
    if state is not None:
        try:
            method.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as exc:  # e.g. the data now has other label tasks
            raise CheckpointError(f"{ckpt_path} does not match the model built from this config and data "
                                  f"(label tasks now: {', '.join(tasks) or 'none'}): {str(exc)[:300]}") from exc
        step, seen = int(state["step"]), int(state["samples_seen"])
        for group, base in zip(opt.param_groups, sched.base_lrs):  # train.steps may have changed
            group["lr"] = base * lr_factor(step, cfg.train.steps, cfg.optim.warmup_steps, cfg.optim.decay_at,
                                           cfg.optim.decay_factor)
        set_rng_state(state["rng"])
        log.info("resumed from %s at step %d", ckpt_path, step)

    last_good = ckpt_path

    def checkpoint(name: str = "last.pt") -> Path:
        path = out / "checkpoints" / name
        model_state = method.state_dict()
        bad = nonfinite_tensors(model_state)  # every rank holds the same weights, so every rank stops here
        if bad:
            raise NonFiniteLossError(
                f"weights became NaN or infinite by step {step} ({len(bad)} of {len(model_state)} tensors, e.g. "
                f"{', '.join(bad[:3])}); no checkpoint written; the last good checkpoint is kept: "
                f"{last_good or 'none written yet'}")
        if dinfo.is_main:
            save_checkpoint(path, {"config": to_plain(cfg), "method": cfg.train.method, "model": model_state,
                                   "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                   "scaler": scaler.state_dict(), "step": step, "samples_seen": seen,
                                   "rng": rng_state(), "tokenizer": tokenizer.to_json() if tokenizer else None,
                                   "tasks": tasks, "precision": precision})
        dist_utils.barrier()
        return path

    if not METHOD_SPECS[cfg.train.method].trained or step >= cfg.train.steps:
        return PretrainResult(out, checkpoint(), step)
    model: Any = method
    if dinfo.world_size > 1:
        model = DDP(method, device_ids=[device.index] if device.type == "cuda" else None,
                    find_unused_parameters=not method.uses_all_parameters)
    if resolve_compile(cfg.train.compile, device):
        model = CompiledStep(model)
    augment = resolve_augment(cfg.data.augment, device, cfg.model.image_size)
    workers = resolve_workers(cfg.data.workers, device, dist_utils.local_world_size())
    views = DeviceViews(cfg.model.image_size) if augment == "device" else None
    log.info("data: %d loader worker(s)%s, views drawn %s%s", workers, " (chosen from the machine)"
             if cfg.data.workers < 0 else "", "on the device, batched" if views else "per image in the loader",
             "; torch.compile on" if isinstance(model, CompiledStep) else "")
    loader = make_loader(cfg, source, tokenizer, list(tasks), step, dinfo, device.type == "cuda", workers, augment)
    tracker = SkipTracker(cfg.data.max_bad_fraction)
    cached = isinstance(source, CachedSource)
    if cached:  # its unusable samples were counted once, when it was built; it serves only usable ones
        tracker.add_summary(source.meta.bad)
    logger = RunLogger(out, enabled=dinfo.is_main, purge_step=step + 1 if state is not None else None)
    text_params = list(method.text_encoder.parameters()) if method.text_encoder is not None else []
    bar = Progress(cfg.train.steps, step, cfg.train.progress and dinfo.is_main, cfg.train.method)
    stopped = False
    t_last, n_last, wait = time.perf_counter(), seen, 0.0
    first_step, t_first = step + 1, None  # the first step of this process is logged (no 10-step silence)
    with batches(loader) as it, StopFlag() as stop:
        while step < cfg.train.steps:
            t0 = time.perf_counter()
            try:
                with stop.waiting(dinfo.world_size == 1):
                    batch = next_batch(it)
            except StopWaiting:
                last_good, stopped = checkpoint(), True
                log.warning("stop signal received while waiting for data: checkpoint written to %s at step %d; "
                            "continue with --resume latest", last_good, step)
                logger.write({"step": step, "stopped": "signal", "checkpoint": str(last_good)}, step)
                break
            wait += time.perf_counter() - t0
            if not cached:
                tracker.record_batch(batch)
            batch = to_device(batch, device, cfg.model.channels_last, views,
                               step_seed(cfg.train.seed, step, dinfo.rank) if views else 0)
            method.train()
            with autocast(precision, device):
                res = model(batch)
            if not torch.isfinite(res.loss):
                bar.close()
                raise NonFiniteLossError(
                    f"loss became {res.loss.item()} at step {step + 1} (terms: "
                    + ", ".join(f"{k}={v.item():.4g}" for k, v in res.terms.items())
                    + f"); the last good checkpoint is kept: {last_good or 'none written yet'}")
            optimizer_step(res.loss, opt, scaler, text_params, cfg.optim.text_grad_clip)
            sched.step()
            step += 1
            status["step"] = step
            seen += batch["n"] * dinfo.world_size
            bar.update(1)
            if step == first_step + 3 and step < cfg.train.steps and t_first is not None:
                per_step = (time.perf_counter() - t_first) / 3
                log.info("estimated time to finish: %s for the remaining %d steps (%.2f s a step over steps %d-%d)",
                         _duration(per_step * (cfg.train.steps - step)), cfg.train.steps - step, per_step,
                         first_step + 1, step)
            if step == first_step or step % cfg.train.log_every == 0 or step == cfg.train.steps:
                now = time.perf_counter()
                rate = (seen - n_last) / max(now - t_last, 1e-9)
                rec = {"step": step, "samples_seen": seen, "lr": opt.param_groups[0]["lr"],
                       "samples_per_s": rate, "data_wait_s": wait,
                       **{f"loss/{k}": v.item() for k, v in res.terms.items()},
                       **{k: v.item() for k, v in res.metrics.items()}, "bad_samples": tracker.n_bad}
                logger.write(rec, step)
                steps_log.info("step %d/%d: %s", step, cfg.train.steps, ", ".join(
                    f"{k}={v:.4g}" for k, v in rec.items() if k != "step" and isinstance(v, float)))
                bar.set_postfix({k.split("/")[-1]: f"{v.item():.3f}" for k, v in res.terms.items()} |
                                {"img/s": f"{rate:.0f}"})
                t_last, n_last, wait = now, seen, 0.0
                if step == first_step:
                    t_first = now
            if step % cfg.train.ckpt_every == 0 or step == cfg.train.steps:
                last_good = checkpoint()
            # ranks agree on a stop every log_every steps (a collective; one process checks every step)
            if (dinfo.world_size == 1 or step % cfg.train.log_every == 0) and stop.requested(dinfo.world_size,
                                                                                                device):
                last_good, stopped = checkpoint(), True
                log.warning("stop signal received: checkpoint written to %s at step %d; continue with --resume "
                            "latest", last_good, step)
                logger.write({"step": step, "stopped": "signal", "checkpoint": str(last_good)}, step)
                break
    bar.close()
    logger.write({"step": step, "data_quality": tracker.summary()}, step)
    logger.close()
    if tracker.n_bad:
        log.warning("skipped %d unusable samples of %d: %s", tracker.n_bad, tracker.seen, tracker.summary())
    return PretrainResult(out, last_good or checkpoint(), step, stopped)


def _duration(seconds: float) -> str:
    """``42 s``, ``13 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["pretrain", "PretrainResult", "source_tasks", "build_optimizer", "make_loader", "optimizer_step"]
