"""The run folder: never overwrite a run silently; on resume, apply harmless config changes and refuse the rest."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..config import Config, from_dict, to_plain
from ..errors import ConfigError
from .checkpoint import remove_stale_temp_files

# Keys a resumed run may change: they neither change the model nor what the finished run would have learned.
# (Data paths: a dataset that moved. Everything in ``eval``: evaluation only.) Any other change is an error.
RESUMABLE = ("train.steps", "train.log_every", "train.ckpt_every", "train.progress", "train.out_dir",
             "train.device", "train.precision", "train.compile", "data.path", "data.root", "data.eval_train_path",
             "data.eval_test_path", "data.workers", "data.max_bad_fraction", "data.max_image_pixels",
             "data.shuffle_buffer", "model.channels_last", "text.tokenizer_path", "loss.chunk_size", "eval.*")
# What ``tvdim pretrain`` writes into a run folder (``--overwrite`` deletes exactly these).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "train.log", "tb", "config.json")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _resumable(key: str) -> bool:
    return key in RESUMABLE or f"{key.split('.')[0]}.*" in RESUMABLE


def resume_changes(saved: dict[str, Any], cfg: Config, checkpoint: Path) -> list[str]:
    """Check that ``cfg`` may continue the run saved in ``checkpoint`` (whose config is ``saved``); returns the
    applied changes, one line each, for the run's log.

    Changes to :data:`RESUMABLE` keys are allowed; any other change (method, architecture, loss, optimiser, batch,
    seed, data content) raises :class:`ConfigError` naming every changed key."""
    old, new = _flat(to_plain(from_dict(saved))), _flat(to_plain(cfg))
    changed = [(k, old[k], new[k]) for k in new if old.get(k) != new[k]]
    refused = [c for c in changed if not _resumable(c[0])]
    if refused:
        raise ConfigError(
            f"cannot resume {checkpoint} with a changed configuration: "
            + ", ".join(f"{k} {a!r} -> {b!r}" for k, a, b in refused)
            + ". These keys fix the method, the model or what it learns; start a new run instead (another --out, "
            "or --overwrite to replace this one)")
    return [f"resume: {k} changed from {a!r} to {b!r}" for k, a, b in changed]


def holds_run(out: Path) -> bool:
    return (out / "checkpoints" / "last.pt").is_file() or (out / "metrics.jsonl").is_file()


def prepare_run_dir(out: Path, resume_step: int | None, resume_requested: bool, overwrite: bool) -> list[str]:
    """Make ``out`` ready for a run (rank 0); returns what it did, one line each, for the run's log.

    Fresh start: a folder holding a run (a checkpoint or metrics) is an error unless ``overwrite`` (its run outputs
    are deleted) or ``resume_requested`` (``--resume latest`` found no checkpoint: the unfinished attempt's outputs
    are replaced). Resume from step ``resume_step``: metrics logged after that step (by the attempt that was cut
    off) are dropped, since the resumed run logs those steps again. Stale ``*.tmp`` files from a killed checkpoint
    write are removed in both cases.
    """
    if resume_step is None and holds_run(out):
        if not (overwrite or resume_requested):
            raise ConfigError(f"{out} already holds a run ({_describe(out)}); continue it with --resume latest, "
                              "or pass --overwrite to delete its checkpoints and logs and start again")
        for name in RUN_OUTPUTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        notes = [f"removed the outputs of the previous run in {out} "
                 f"({'overwrite' if overwrite else 'no checkpoint to resume'})"]
    else:
        notes = []
    out.mkdir(parents=True, exist_ok=True)
    notes += [f"removed {p}, left by a checkpoint write that was interrupted"
              for p in remove_stale_temp_files(out / "checkpoints")]
    if resume_step is not None:
        notes += _truncate_metrics(out / "metrics.jsonl", resume_step)
    return notes


def _describe(out: Path) -> str:
    ckpt = out / "checkpoints" / "last.pt"
    return f"{ckpt.relative_to(out)}" if ckpt.is_file() else "metrics.jsonl"


def _truncate_metrics(path: Path, step: int) -> list[str]:
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    keep = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:  # a line cut by the kill
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), (int, float)) and rec["step"] <= step:
            keep.append(line)
    if len(keep) != len(lines):
        path.write_text("".join(f"{line}\n" for line in keep))
        return [f"metrics.jsonl: dropped {len(lines) - len(keep)} records logged after step {step} by the "
                "interrupted run"]
    return []


__all__ = ["resume_changes", "prepare_run_dir", "holds_run", "RESUMABLE", "RUN_OUTPUTS"]
