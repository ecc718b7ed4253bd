"""Checkpoint files: atomic writes, safe reads, clear errors."""
from __future__ import annotations

import pathlib

import pytest
import torch

from tvdim.errors import CheckpointError
from tvdim.train.checkpoint import FORMAT, load_checkpoint, resolve_resume, rng_state, save_checkpoint, set_rng_state


class Evil:
    """Unpickling this object would create a file (stands for arbitrary code execution)."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_round_trip_and_no_temp_file_left(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "c.pt", {"step": 3, "model": {"w": torch.arange(4.0)}})
    assert path.is_file() and not (tmp_path / "sub" / "c.pt.tmp").exists()
    state = load_checkpoint(path)
    assert state["format"] == FORMAT and state["step"] == 3 and torch.equal(state["model"]["w"], torch.arange(4.0))


def test_missing_file_names_path(tmp_path):
    p = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt"):
        load_checkpoint(p)


def test_garbage_file_names_path(tmp_path):
    p = tmp_path / "garbage.pt"
    p.write_bytes(b"this is not a checkpoint at all\x00\x01")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(p)


def test_foreign_torch_file_is_refused(tmp_path):
    p = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, p)
    with pytest.raises(CheckpointError, match="foreign.pt.*not a tvdim checkpoint"):
        load_checkpoint(p)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt"):
        load_checkpoint(tmp_path / "list.pt")


def test_pickled_object_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": Evil(marker)}, p)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(p)
    assert not marker.exists()


def test_resolve_resume(tmp_path):
    assert resolve_resume(None, tmp_path) is None
    assert resolve_resume("", tmp_path) is None
    assert resolve_resume("latest", tmp_path) is None  # nothing yet: fresh start
    last = save_checkpoint(tmp_path / "checkpoints" / "last.pt", {"step": 1})
    assert resolve_resume("latest", tmp_path) == last
    assert resolve_resume(str(last), tmp_path / "elsewhere") == last
    with pytest.raises(CheckpointError, match="missing.pt"):
        resolve_resume(str(tmp_path / "missing.pt"), tmp_path)


def test_rng_state_survives_checkpoint(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(123)
    random.seed(4)
    np.random.seed(5)
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expect = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    set_rng_state(load_checkpoint(path)["rng"])
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expect[0], got[0]) and expect[1] == got[1] and expect[2] == got[2]
