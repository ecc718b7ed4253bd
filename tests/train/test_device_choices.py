"""Choices made from the machine: loader workers, where the views are drawn, torch.compile, processes per machine."""
from __future__ import annotations

import os

import pytest
import torch

import tvdim.train.device as device_mod
from tvdim.train.device import resolve_augment, resolve_compile, resolve_workers
from tvdim.distributed import local_world_size

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)  # a device object only: no GPU needed


def cores(monkeypatch, n):
    monkeypatch.setattr(device_mod, "available_cpus", lambda: n)


@pytest.mark.parametrize("dev", [CPU, CUDA])
@pytest.mark.parametrize("workers", [0, 1, 3, 12])
def test_explicit_workers_are_kept(monkeypatch, dev, workers):
    cores(monkeypatch, 16)
    assert resolve_workers(workers, dev) == workers
    assert resolve_workers(workers, dev, local_world_size=4) == workers


@pytest.mark.parametrize("n_cores, procs, expect", [
    (16, 1, 8),  # capped at 8
    (16, 2, 7),  # 8 cores per process, one left for the process itself
    (2, 1, 1),
    (2, 2, 0),  # one core per process: no room for a loader process
    (1, 1, 0),
    (1, 2, 0),  # fewer cores than processes: still one core per process, never negative
    (8, 1, 7),
    (64, 8, 7),
])
def test_auto_workers_on_cuda(monkeypatch, n_cores, procs, expect):
    cores(monkeypatch, n_cores)
    assert resolve_workers(-1, CUDA, procs) == expect


@pytest.mark.parametrize("n_cores, procs, expect", [
    (2, 1, 0),  # the step needs both cores
    (16, 1, 4),  # a quarter of the cores
    (16, 2, 2),
    (16, 8, 0),  # 2 cores per process
    (3, 1, 0),  # 3 // 4
    (4, 1, 1),
    (8, 1, 2),
    (64, 1, 8),  # capped at 8
    (1, 1, 0),
])
def test_auto_workers_on_cpu(monkeypatch, n_cores, procs, expect):
    cores(monkeypatch, n_cores)
    assert resolve_workers(-1, CPU, procs) == expect


def test_available_cpus_is_this_process_share():
    n = device_mod.available_cpus()
    assert isinstance(n, int) and n >= 1
    if hasattr(os, "sched_getaffinity"):  # Linux: the affinity mask, not the machine's core count
        assert n == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value, dev, size, expect", [
    ("auto", CPU, 32, "device"), ("auto", CPU, 64, "cpu"), ("auto", CPU, 128, "cpu"),  # measured: batched wins at 32
    ("auto", CUDA, 32, "device"), ("auto", CUDA, 64, "device"), ("auto", CUDA, 128, "device"),
    ("cpu", CPU, 32, "cpu"), ("cpu", CUDA, 64, "cpu"),
    ("device", CPU, 64, "device"), ("device", CUDA, 128, "device"),
])
def test_resolve_augment(value, dev, size, expect):
    assert resolve_augment(value, dev, size) == expect


@pytest.mark.parametrize("value, dev, expect", [
    ("auto", CPU, False), ("auto", CUDA, True),
    ("on", CPU, True), ("on", CUDA, True),
    ("off", CPU, False), ("off", CUDA, False),
])
def test_resolve_compile(value, dev, expect):
    assert resolve_compile(value, dev) is expect


@pytest.mark.parametrize("env, expect", [(None, 1), ("1", 1), ("2", 2), ("8", 8), ("0", 1)])
def test_local_world_size_from_torchrun_env(monkeypatch, env, expect):
    if env is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", env)
    assert local_world_size() == expect


def test_local_world_size_divides_the_cores(monkeypatch):
    """The trainer passes local_world_size() on: 2 torchrun processes on 16 cores get 7 GPU loader workers each."""
    cores(monkeypatch, 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resolve_workers(-1, CUDA, local_world_size()) == 7
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resolve_workers(-1, CPU, local_world_size()) == 1


# --- the trainer: the resolved values reach the loader and the run's log ---------------------------------------

TINY = ["train.method=amdim", "model.ndf=4", "model.n_rkhs=16", "model.n_depth=1", "model.image_size=32",
        "train.batch_size=4", "data.synth_train=16", "data.synth_test=8", "train.progress=false",
        "train.device=cpu", "train.steps=1"]


class _Stop(Exception):
    """Raised by the patched make_loader: the test has what it wanted, no loader (or worker process) is made."""


def _pretrain(out, *extra):
    from tvdim.config import load_config
    from tvdim.train import trainer

    return trainer.pretrain(load_config(overrides=TINY + [f"train.out_dir={out}", *extra]))


def _capture_loader(monkeypatch):
    import inspect

    from tvdim.train import trainer

    seen = {}
    sig = inspect.signature(trainer.make_loader)

    def fake(*a, **k):
        args = sig.bind(*a, **k)
        args.apply_defaults()
        seen.update(workers=args.arguments["workers"], augment=args.arguments["augment"],
                    pin=args.arguments["pin"])
        raise _Stop

    monkeypatch.setattr(trainer, "make_loader", fake)
    return seen


def _data_line(out):
    lines = [line for line in (out / "train.log").read_text().splitlines() if "loader worker(s)" in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_auto_workers_on_a_two_core_cpu_train_in_process(tmp_path, monkeypatch):
    cores(monkeypatch, 2)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    res = _pretrain(tmp_path / "a", "data.workers=-1")
    assert res.step == 1
    assert ("data: 0 loader worker(s) (chosen from the machine), views drawn on the device, batched"
            in _data_line(tmp_path / "a"))  # 32 px: data.augment=auto draws the views batched, also on a CPU


def test_explicit_workers_are_not_called_chosen(tmp_path, monkeypatch):
    cores(monkeypatch, 16)
    res = _pretrain(tmp_path / "b", "data.workers=0", "data.augment=cpu")
    assert res.step == 1
    line = _data_line(tmp_path / "b")
    assert "data: 0 loader worker(s), views drawn per image in the loader" in line
    assert "chosen" not in line and "torch.compile" not in line


@pytest.mark.parametrize("extra, lws, expect", [
    (["data.workers=-1"], None, {"workers": 4, "augment": "device"}),  # 16 cores // 4; 32 px: batched
    (["data.workers=-1"], "2", {"workers": 2, "augment": "device"}),  # 8 cores per process // 4
    (["data.workers=-1"], "8", {"workers": 0, "augment": "device"}),  # 2 cores per process
    (["data.workers=3"], "8", {"workers": 3, "augment": "device"}),  # explicit: kept
    ([], None, {"workers": 4, "augment": "device"}),  # the defaults: -1 and auto
    (["data.workers=1", "data.augment=device"], None, {"workers": 1, "augment": "device"}),
    (["data.augment=cpu"], None, {"workers": 4, "augment": "cpu"}),
    (["model.image_size=64"], None, {"workers": 4, "augment": "cpu"}),  # 64 px on a CPU: per image
])
def test_trainer_passes_resolved_workers_and_augment_to_the_loader(tmp_path, monkeypatch, extra, lws, expect):
    cores(monkeypatch, 16)
    if lws is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", lws)
    seen = _capture_loader(monkeypatch)
    with pytest.raises(_Stop):
        _pretrain(tmp_path / "c", *extra)
    assert seen == {**expect, "pin": False}  # no pinned memory without CUDA
    line = _data_line(tmp_path / "c")
    assert f"data: {expect['workers']} loader worker(s)" in line
    assert ("(chosen from the machine)" in line) == (not any(e.startswith("data.workers=") and e != "data.workers=-1"
                                                             for e in extra))
    assert ("views drawn on the device, batched" in line) == (expect["augment"] == "device")


def test_evaluate_resolves_workers_for_its_own_device(tmp_path, monkeypatch):
    """evaluate with data.workers=-1 hands the feature extraction the CPU rule's count (16 cores -> 4), not -1 and
    not the GPU rule's (8)."""
    from tvdim.eval import evaluate as ev

    res = _pretrain(tmp_path / "r", "train.method=random")
    cores(monkeypatch, 16)
    seen = []

    def fake(encoder, source, size, batch, device, workers, *rest):
        seen.append(workers)
        raise _Stop

    monkeypatch.setattr(ev, "extract_features", fake)
    with pytest.raises(_Stop):
        ev.evaluate(res.checkpoint, device="cpu")
    assert seen == [4]
