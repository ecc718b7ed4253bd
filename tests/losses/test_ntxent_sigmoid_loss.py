"""SimCLR's NT-Xent and SigLIP's sigmoid loss against hand computation (and, when the packages are installed,
against lightly's NTXentLoss and open_clip's SigLipLoss); CLIP's logit-scale clamp."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tvdim.losses import nt_xent, nt_xent_rows, sigmoid_rows
from tvdim.methods.contrastive import CLIP_INIT_SCALE, SIGLIP_INIT, clip_scale


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def nt_xent_anchor(anchor, pos, negs, t):
    a = F.normalize(anchor, dim=0)
    logits = [float(a @ F.normalize(x, dim=0)) / t for x in [pos, *negs]]
    return math.log(sum(math.exp(v) for v in logits)) - logits[0]


def test_nt_xent_rows_by_hand_with_a_global_batch_and_offset():
    z1_all, z2_all = rand(6, 5, seed=1), rand(6, 5, seed=2)
    off, b, t = 2, 3, 0.3  # this rank holds rows 2..4 of the global batch
    rows = nt_xent_rows(z1_all[off:off + b], z2_all[off:off + b], z1_all, z2_all, off, t)
    for i in range(b):
        g = off + i
        negs1 = [z1_all[j] for j in range(6) if j != g] + [z2_all[j] for j in range(6) if j != g]
        negs2 = [z2_all[j] for j in range(6) if j != g] + [z1_all[j] for j in range(6) if j != g]
        want = (nt_xent_anchor(z1_all[g], z2_all[g], negs1, t) + nt_xent_anchor(z2_all[g], z1_all[g], negs2, t)) / 2
        assert rows[i].item() == pytest.approx(want, rel=1e-5)


def test_nt_xent_is_symmetric_in_the_views_and_low_for_matching_views():
    z1, z2 = rand(8, 16, seed=3), rand(8, 16, seed=4)
    assert nt_xent(z1, z2).item() == pytest.approx(nt_xent(z2, z1).item(), rel=1e-6)
    assert nt_xent(z1, z1 + 0.01 * z2).item() < nt_xent(z1, z2).item()


def test_sigmoid_rows_by_hand_with_offset_and_captionless_columns():
    s = torch.tanh(rand(3, 5, seed=5))
    valid = torch.tensor([True, False, True, True, True])
    t, b, off = torch.tensor(1.5), torch.tensor(-2.0), 1
    rows = sigmoid_rows(s, off, t, b, valid)
    for i in range(3):
        total = 0.0
        for j in range(5):
            if j != off + i and not valid[j]:
                continue
            z = 1.0 if j == off + i else -1.0
            total += -math.log(1 / (1 + math.exp(-z * (math.exp(1.5) * float(s[i, j]) - 2.0))))
        assert rows[i].item() == pytest.approx(total, rel=1e-5)


def test_initial_values_are_the_papers_and_clip_scale_is_clamped_at_100():
    assert math.exp(CLIP_INIT_SCALE) == pytest.approx(1 / 0.07)
    assert SIGLIP_INIT == (pytest.approx(math.log(10)), -10.0)
    assert clip_scale(torch.tensor(math.log(50.0))).item() == pytest.approx(50.0)
    assert clip_scale(torch.tensor(math.log(500.0))).item() == pytest.approx(100.0)


def test_nt_xent_equals_lightlys_ntxentloss():
    lightly_loss = pytest.importorskip("lightly.loss", reason="lightly is not installed (pip install lightly)")
    z1, z2 = rand(10, 12, seed=6), rand(10, 12, seed=7)
    want = lightly_loss.NTXentLoss(temperature=0.1)(z1, z2)
    assert nt_xent(z1, z2, 0.1).item() == pytest.approx(want.item(), rel=1e-5)


def test_sigmoid_loss_equals_open_clips_siglip_loss():
    open_clip_loss = pytest.importorskip("open_clip.loss", reason="open_clip is not installed (pip install open_clip_torch)")
    img, txt = F.normalize(rand(7, 9, seed=8), dim=1), F.normalize(rand(7, 9, seed=9), dim=1)
    scale, bias = torch.tensor(10.0), torch.tensor(-10.0)
    want = open_clip_loss.SigLipLoss()(img, txt, scale, bias)
    got = sigmoid_rows(img @ txt.T, 0, scale.log(), bias).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
