"""One training step of a method on a fixed global batch, on 1 process or as one rank of several (gloo, CPU).

Shared by the test (the 1-process reference, in the pytest process) and ``rank_worker.py`` (each rank of the
multi-process run), so both build exactly the same model and batch.

A case is ``(method, overrides)``: overrides are ``section.key=value`` strings on top of :data:`TINY`.
"""
from __future__ import annotations

from typing import Any

import torch

import tvdim.methods.contrastive as contrastive
from tvdim.config import load_config
from tvdim.methods import build_method, uses_text
from tvdim import distributed as dist_utils

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "model.channels_last=false", "text.dim=16",
        "text.layers=1", "text.heads=2", "text.max_len=16", "text.dropout=0.0", "train.device=cpu"]
GLOBAL_BATCH = 8
VOCAB = 40
TASKS = {"label": 3}


def global_batch(seed: int = 0) -> dict[str, Any]:
    """The same ``GLOBAL_BATCH`` rows on every process. Two captions are missing in the first half and none in the
    second, two labels are unknown in the first half and one in the second: the ranks of a 2-process run hold
    different numbers of captioned / labelled rows, and the global mean must still come out."""
    g = torch.Generator().manual_seed(seed)
    n, t = GLOBAL_BATCH, 16
    lengths = torch.randint(2, t + 1, (n,), generator=g)
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)
    ids = torch.randint(5, VOCAB, (n, t), generator=g) * mask
    has_text = torch.ones(n, dtype=torch.bool)
    has_text[[1, 2]] = False
    labels = torch.randint(0, TASKS["label"], (n,), generator=g)
    labels[[0, 3, n // 2 + 1]] = -1
    return {"x1": torch.randn(n, 3, 32, 32, generator=g), "x2": torch.randn(n, 3, 32, 32, generator=g),
            "ids": ids, "mask": mask, "has_text": has_text, "labels": {"label": labels}, "n": n}


def rank_slice(batch: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """This rank's contiguous block of rows (the trainer's sampler gives rank r block r of each global batch)."""
    b = GLOBAL_BATCH // world
    rows = slice(rank * b, (rank + 1) * b)
    out: dict[str, Any] = {"n": b}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v[rows]
        elif isinstance(v, dict):
            out[k] = {kk: vv[rows] for kk, vv in v.items()}
    return out


def _fixed_locations(fmap: torch.Tensor, generator: Any = None) -> torch.Tensor:
    """Deterministic stand-in for the random 5x5 source location: a function of the *global* row index, so one
    process and N ranks pick the same location for the same image (the real one draws from each rank's RNG)."""
    b, d, h, w = fmap.shape
    rows = torch.arange(b) + dist_utils.current().rank * b
    return fmap.flatten(2)[torch.arange(b), :, (rows * 7 + 3) % (h * w)]


def one_step(method: str, overrides: list[str] | tuple[str, ...], rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Forward + backward of ``method`` on this rank's part of :func:`global_batch`, wrapped as the trainer wraps
    it when distributed (global-batch BatchNorm, DDP). Returns this rank's loss, terms and the parameters'
    gradients (after DDP's averaging)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    cfg = load_config(overrides=TINY + [f"train.method={method}", *overrides])
    torch.manual_seed(0)
    model_ = build_method(cfg, TASKS, VOCAB if uses_text(cfg) else None)
    model: Any = model_
    if world > 1:
        dist_utils.convert_global_bn(model_, "cpu")
        model = DDP(model_, find_unused_parameters=not model_.uses_all_parameters)
    model_.train()
    for m in model_.modules():  # a stateful per-pair weighting (loss.robust): the same warm memory on every process
        if hasattr(m, "remember"):
            g = torch.Generator().manual_seed(1)
            m.remember(torch.cat([torch.rand(48, generator=g) * 2, 4 + torch.rand(16, generator=g) * 4]))
        if hasattr(m, "pmemory"):  # storey: few remembered p-values above 0.5, so the batch's own ranks set the rate
            m._push(m.pmemory, m.pfilled, torch.full((8,), 0.25))
    real = contrastive.random_locations
    contrastive.random_locations = _fixed_locations
    try:
        out = model(rank_slice(global_batch(), rank, world))
    finally:
        contrastive.random_locations = real
    out.loss.backward()
    grads = {k: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
             for k, p in model_.named_parameters()}
    return {"loss": out.loss.detach(), "terms": {k: v.detach() for k, v in out.terms.items()}, "grads": grads}
