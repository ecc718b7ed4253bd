"""The run folder: never overwrite a run silently; on resume, apply harmless config changes and refuse the rest."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

from ..config import Config, from_dict, to_plain
from ..errors import ConfigError
from .checkpoint import remove_stale_temp_files

log = logging.getLogger("tvdim.train")
LOCK_FILE = "run.lock"

# Keys a resumed run may change: they neither change the model nor what the finished run would have learned.
# (Data paths: a dataset that moved. Everything in ``eval``: evaluation only.) Any other change is an error.
RESUMABLE = ("train.steps", "train.log_every", "train.ckpt_every", "train.progress", "train.out_dir",
             "train.device", "train.precision", "train.compile", "data.path", "data.root", "data.eval_train_path",
             "data.eval_test_path", "data.workers", "data.max_bad_fraction", "data.max_image_pixels",
             "data.shuffle_buffer", "data.cache", "data.cache_dir", "model.channels_last",
             "model.size",  # a name: model.ndf / n_rkhs / n_depth are what fix the model
             "text.tokenizer_path", "loss.chunk_size", "eval.*")
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True
    return True


class RunLock:
    """``<out>/run.lock``: one ``tvdim pretrain`` writes into a run folder at a time (rank 0 holds it).

    The file is created atomically (``O_CREAT | O_EXCL``) and holds the owner's PID and host as JSON. A lock whose
    process is dead (same host) is stale: it is taken over and :meth:`acquire` says so (for the run's log). A lock
    of a live process, or of another host (which cannot be checked), is a :class:`ConfigError` naming both.
    :meth:`release` removes the file when this process owns it (the trainer calls it on every exit: finish, error,
    stop signal); a run killed outright (SIGKILL) leaves a stale lock that the next run takes over."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self.held = False

    def acquire(self) -> list[str]:
        self.out.mkdir(parents=True, exist_ok=True)
        notes: list[str] = []
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner == {}:  # released meanwhile: try again
                    continue
                if owner is None:  # being written by its owner this instant, or cut off: look again, then take it
                    time.sleep(0.2)
                    owner = self._owner()
                if owner == {}:
                    continue
                if owner is not None:
                    pid, host = owner.get("pid"), owner.get("host")
                    if host != me["host"]:
                        raise ConfigError(
                            f"{self.out} is in use by another tvdim pretrain (pid {pid} on host {host}, lock file "
                            f"{self.path}); wait for it or use another --out (delete the lock file only if that run "
                            "is gone)")
                    if isinstance(pid, int) and pid > 0 and _alive(pid):
                        raise ConfigError(
                            f"{self.out} is in use by another tvdim pretrain (pid {pid} on host {host}, lock file "
                            f"{self.path}); wait for it to finish or use another --out")
                    note = f"took over the stale lock {self.path} of pid {pid} on host {host} (that process is gone)"
                else:
                    note = f"took over the unreadable lock file {self.path} (left by a run that was killed)"
                log.warning("%s", note)
                notes.append(note)
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            try:
                os.write(fd, json.dumps(me).encode())
            finally:
                os.close(fd)
            self.held = True
            self._catch_signals()
            return notes
        raise ConfigError(f"cannot take the run lock {self.path}: another process keeps taking it")

    def _owner(self) -> dict[str, Any] | None:
        try:
            rec = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) and rec else None

    def _catch_signals(self) -> None:
        """Until :meth:`release`, a stop signal that nobody else handles (it arrives before the training loop's
        own handler, or after it) first releases the lock, then does what it did before (default: exit 143)."""
        self._old: dict[int, Any] = {}
        for sig in (signal.SIGTERM, getattr(signal, "SIGUSR1", None), getattr(signal, "SIGHUP", None)):
            if sig is None:
                continue
            try:
                self._old[sig] = signal.signal(sig, self._on_signal)
            except (ValueError, OSError):  # not the main thread
                pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        old = self._old.get(signum, signal.SIG_DFL)
        self.release()
        if callable(old):
            old(signum, frame)
        elif old != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        for sig, old in getattr(self, "_old", {}).items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                if signal.getsignal(sig) == self._on_signal:
                    signal.signal(sig, old if old is not None else signal.SIG_DFL)
        owner = self._owner()
        if owner and owner.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


__all__ = ["resume_changes", "prepare_run_dir", "holds_run", "RunLock", "RESUMABLE", "RUN_OUTPUTS"]
