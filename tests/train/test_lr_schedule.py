"""AMDIM learning-rate schedule: linear warm-up, one step decay."""
from __future__ import annotations

import pytest
import torch

from tvdim.train.schedule import build_scheduler, lr_factor


def test_warmup_is_linear_then_flat():
    assert lr_factor(0, 100, 4, 0.8, 0.2) == pytest.approx(0.25)
    assert lr_factor(1, 100, 4, 0.8, 0.2) == pytest.approx(0.5)
    assert lr_factor(3, 100, 4, 0.8, 0.2) == pytest.approx(1.0)
    assert lr_factor(50, 100, 4, 0.8, 0.2) == pytest.approx(1.0)
    assert lr_factor(0, 100, 0, 0.8, 0.2) == 1.0  # no warm-up


def test_step_decay_late_in_training():
    assert lr_factor(79, 100, 4, 0.8, 0.2) == pytest.approx(1.0)
    assert lr_factor(80, 100, 4, 0.8, 0.2) == pytest.approx(0.2)
    assert lr_factor(99, 100, 4, 0.8, 0.2) == pytest.approx(0.2)
    assert lr_factor(2, 10, 4, 0.1, 0.5) == pytest.approx(0.75 * 0.5)  # warm-up and decay multiply


def test_factors_monotone_during_warmup_and_bounded():
    f = [lr_factor(s, 1000, 500, 0.8, 0.2) for s in range(1000)]
    assert all(a <= b for a, b in zip(f[:500], f[1:500]))
    assert max(f) == pytest.approx(1.0) and min(f) > 0


def test_scheduler_drives_optimizer_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = build_scheduler(opt, 10, 3, 0.5, 0.1)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1 * lr_factor(s, 10, 3, 0.5, 0.1) for s in range(10)])
