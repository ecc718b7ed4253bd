"""The optimiser (Adam; encoder and online-probe parameter groups) and one optimisation step."""
from __future__ import annotations

import torch

from ..config import Config
from ..methods import Method


def build_optimizer(method: Method, cfg: Config, device: torch.device) -> torch.optim.Optimizer:
    o = cfg.optim
    groups = [{"params": method.encoder_parameters(), "lr": o.lr},
              {"params": list(method.probes.parameters()), "lr": o.probe_lr}]
    groups = [g for g in groups if g["params"]]
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.Adam(groups, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, **fast)


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   text_params: list[torch.nn.Parameter], text_grad_clip: float) -> None:
    """Backward and one optimizer step (grad scaler for fp16; the text tower's gradient norm clipped to
    ``text_grad_clip`` when > 0)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if text_params and text_grad_clip > 0:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(text_params, text_grad_clip)
    scaler.step(opt)
    scaler.update()


__all__ = ["build_optimizer", "optimizer_step"]
