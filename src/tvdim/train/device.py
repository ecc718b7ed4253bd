"""Device and precision choices: bf16 autocast + TF32 on GPU, fp32 on CPU by default."""
from __future__ import annotations

import contextlib
import os

import torch

from ..errors import ConfigError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is available; use train.device=cpu")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def configure_backends(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_workers(workers: int, device: torch.device, local_world_size: int = 1) -> int:
    """``data.workers``; -1 chooses from the machine: on a GPU, up to 8 loader processes per training process
    (one core left for the process itself); on a CPU, a quarter of the process's cores, at most 8 (none up to 3
    cores: the step needs them, and a worker would only compete with it)."""
    if workers >= 0:
        return workers
    cores = max(1, available_cpus() // max(1, local_world_size))
    if device.type == "cuda":
        return max(0, min(8, cores - 1))
    return min(8, cores // 4)


def resolve_augment(augment: str, device: torch.device, image_size: int) -> str:
    """``data.augment``: ``auto`` draws the views batched on the training device on a GPU, and on a CPU at 32 px,
    where the batched path costs about a quarter of the CPU time of the per-image one; at 64 / 128 px on a CPU
    the per-image path is as fast or faster (benchmarks/augment_throughput.py, docs/results.md)."""
    if augment == "auto":
        return "device" if device.type == "cuda" or image_size <= 32 else "cpu"
    return augment


def resolve_compile(compile: str, device: torch.device) -> bool:
    """``train.compile``: ``auto`` compiles on CUDA only (on the CPU the compile time outweighs the gain of a
    short run)."""
    return compile == "on" or (compile == "auto" and device.type == "cuda")
