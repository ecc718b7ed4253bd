"""Checkpoints: written atomically, read without executing code (``torch.load(weights_only=True)``)."""
from __future__ import annotations

import contextlib
import errno
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

FORMAT = "tvdim-checkpoint-v1"


def rng_state() -> dict[str, Any]:
    """Every RNG the training step uses, as tensors and plain Python values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename): a crash never leaves a half-written file.
    A failed write (full disk, unwritable folder) removes the temp file and raises :class:`CheckpointError`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": FORMAT, **state}, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        kept = " (the previous checkpoint is kept)" if path.is_file() else ""
        if _disk_full(exc):
            raise CheckpointError(f"cannot write checkpoint {path}: no space left on {path.parent}{kept}; free "
                                  "some space, then continue with --resume latest") from exc
        raise CheckpointError(f"cannot write checkpoint {path}: {_first_line(exc)}{kept}") from exc
    return path


def _disk_full(exc: BaseException) -> bool:
    """A full disk (or quota): ENOSPC / EDQUOT, or torch's zip writer stopping short ("unexpected pos", which is
    how ``torch.save`` reports a write that the disk cut off)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return "unexpected pos" in text or "No space left" in text or "file write failed" in text


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete ``*.tmp`` left in a checkpoint folder by a write that was killed; returns what was removed."""
    folder = Path(folder)
    stale = sorted(folder.glob("*.tmp")) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


# What each use needs: evaluation and the Python API rebuild the model; resuming restores the whole training state.
FOR_MODEL = ("config", "model")
FOR_RESUME = FOR_MODEL + ("optimizer", "scheduler", "scaler", "step", "samples_seen", "rng")


def load_checkpoint(path: str | Path, require: tuple[str, ...] = (), mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint on the CPU with ``weights_only=True``; raises :class:`CheckpointError` naming the file when
    it is missing, empty, unreadable, not a tvdim checkpoint or lacks an entry of ``require``. ``mmap``: map the
    tensors instead of reading them (cheap when only the config is needed)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): its write was interrupted or the disk was full")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # pickle / zip / weights_only errors all mean the same to the user
        raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(exc)}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tvdim checkpoint (missing format tag '{FORMAT}')")
    missing = [k for k in require if k not in state]
    if missing or not isinstance(state.get("config", {}), dict) or not isinstance(state.get("model", {}), dict):
        raise CheckpointError(f"checkpoint {path} is incomplete: missing or malformed "
                              f"{', '.join(missing) or 'config / model'}")
    return state


def nonfinite_tensors(tensors: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors in ``tensors`` (a state dict) holding a NaN or an infinity."""
    return [k for k, v in tensors.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def resolve_resume(resume: str | None, out_dir: str | Path) -> Path | None:
    """``None`` -> no resume; ``latest`` -> ``<out_dir>/checkpoints/last.pt`` if it exists (else a fresh start);
    anything else -> that path, which must exist."""
    if not resume:
        return None
    if resume == "latest":
        p = Path(out_dir) / "checkpoints" / "last.pt"
        return p if p.is_file() else None
    p = Path(resume)
    if not p.is_file():
        raise CheckpointError(f"--resume {resume}: no such checkpoint file")
    return p
