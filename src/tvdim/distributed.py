"""Thin helpers over ``torch.distributed`` (torchrun sets the environment; one process = one rank)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1): NCCL on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def local_world_size() -> int:
    """Training processes on this machine (torchrun's ``LOCAL_WORLD_SIZE``; 1 without torchrun)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward all-reduces the incoming gradient and keeps this rank's block.

    (``torch.distributed.nn.all_gather`` scatters into non-contiguous buffers under gloo and returns wrong
    gradients when the gathered tensor is later permuted; this version makes the gradient contiguous first.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous()
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x)
        ctx.rows = x.shape[0]
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum seen by every rank is the sum of every rank's gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous().clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (``[B, ...]``, same shape on every rank) from all ranks along dim 0, keeping gradients.

    The backward pass sums the gradients of every rank's copy, so with DDP's gradient averaging the result equals
    the gradient of the mean loss over the global batch. Identity when not distributed.
    """
    if current().world_size == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    info = current()
    if info.world_size == 1:
        return x
    out = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def global_mean_share(rows: torch.Tensor, rows_all: torch.Tensor | None = None) -> torch.Tensor | float:
    """Weight that turns this rank's mean over its selected ``rows`` (``[B]`` bool) into its share of the mean over
    the selected rows of the global batch: ranks' losses are averaged (DDP averages gradients), so a rank with
    fewer selected rows (captions, known labels) must count for less. ``rows_all``: the gathered ``[N]`` mask if
    already at hand. 1.0 when not distributed."""
    world = current().world_size
    if world == 1:
        return 1.0
    if rows_all is None:
        rows_all = gather_no_grad(rows)
    return rows.float().sum() * world / rows_all.float().sum().clamp(min=1)


def barrier() -> None:
    if current().world_size > 1:
        dist.barrier()


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics span every rank (gloo/CPU stand-in for ``nn.SyncBatchNorm``).

    Sums and squared sums are all-reduced with gradients, so a 2-rank step equals a 1-rank step on the global
    batch. Outside training or without a process group it is plain BatchNorm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4, 5):
            raise ValueError(f"expected 2D-5D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or current().world_size == 1:
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.tensor([float(x.numel() // x.shape[1])], device=x.device)
        stats = _AllReduceSum.apply(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp(min=0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1).clamp(min=1))
                self.num_batches_tracked.add_(1)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_global_bn(module: torch.nn.Module, device_type: str) -> torch.nn.Module:
    """Make every BatchNorm normalise over the global batch: ``nn.SyncBatchNorm`` on GPU, GlobalBatchNorm on CPU."""
    if device_type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_global_bn(child, device_type)
    return module
