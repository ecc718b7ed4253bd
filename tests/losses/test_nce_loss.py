"""AMDIM NCE (L_intra) against an independent, deliberately naive loop implementation."""
from __future__ import annotations

import math

import pytest
import torch

from tvdim.losses import amdim_nce, random_locations, tanh_clip


def reference_nce(src: torch.Tensor, tgt: torch.Tensor, pos_offset: int = 0, tclip: float = 20.0,
                  reg_coef: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """METHOD.md, "Intra-modality loss", written as plain loops in float64."""
    src, tgt = src.double(), tgt.double()
    b, d = src.shape
    n, _, locs = tgt.shape
    losses, raws = [], []
    for i in range(b):
        p = pos_offset + i
        scores = {}
        for j in range(n):
            for l in range(locs):
                raw = torch.dot(src[i], tgt[j, :, l]) / math.sqrt(d)
                raws.append(raw)
                scores[j, l] = tclip * torch.tanh(raw / tclip)
        neg_sum = sum(torch.exp(scores[j, l]) for j in range(n) if j != p for l in range(locs))
        for l in range(locs):
            pos = torch.exp(scores[p, l])
            losses.append(-torch.log(pos / (pos + neg_sum)))
    loss = torch.stack(losses).mean()
    reg = reg_coef * torch.stack(raws).pow(2).mean()
    return loss, reg


def _rand(*shape, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * scale).requires_grad_(True)


@pytest.mark.parametrize("scale", [0.5, 3.0, 12.0])  # 12: scores reach the tanh clip
def test_amdim_nce_matches_loop_reference(scale):
    src, tgt = _rand(4, 6, scale=scale, seed=1), _rand(4, 6, 5, scale=scale, seed=2)
    loss, reg = amdim_nce(src, tgt)
    ref_loss, ref_reg = reference_nce(src, tgt)
    assert torch.allclose(loss.double(), ref_loss, rtol=1e-5, atol=1e-5)
    assert torch.allclose(reg.double(), ref_reg, rtol=1e-5, atol=1e-6)


def test_amdim_nce_tclip_and_reg_coef_are_used():
    src, tgt = _rand(3, 4, scale=4.0, seed=3), _rand(3, 4, 2, scale=4.0, seed=4)
    loss, reg = amdim_nce(src, tgt, tclip=5.0, reg_coef=0.3)
    ref_loss, ref_reg = reference_nce(src, tgt, tclip=5.0, reg_coef=0.3)
    assert torch.allclose(loss.double(), ref_loss, rtol=1e-5, atol=1e-5)
    assert torch.allclose(reg.double(), ref_reg, rtol=1e-5, atol=1e-6)


def test_amdim_nce_distributed_layout_with_offset():
    """This rank holds rows 2..4 of a global batch of 7 target images."""
    src, tgt = _rand(3, 8, seed=5), _rand(7, 8, 4, seed=6)
    loss, reg = amdim_nce(src, tgt, pos_offset=2)
    ref_loss, ref_reg = reference_nce(src, tgt, pos_offset=2)
    assert torch.allclose(loss.double(), ref_loss, rtol=1e-5, atol=1e-5)
    assert torch.allclose(reg.double(), ref_reg, rtol=1e-5, atol=1e-6)
    # the offset matters: pairing row i with target i instead gives another value
    other, _ = amdim_nce(src, tgt, pos_offset=0)
    assert not torch.allclose(other, loss)


@pytest.mark.parametrize("chunk", [1, 2, 3, 10])
def test_amdim_nce_chunking_same_value_and_gradients(chunk):
    src, tgt = _rand(5, 6, scale=2.0, seed=7), _rand(8, 6, 3, scale=2.0, seed=8)
    loss, reg = amdim_nce(src, tgt, pos_offset=1)
    g_src, g_tgt = torch.autograd.grad(loss + reg, (src, tgt))
    loss_c, reg_c = amdim_nce(src, tgt, pos_offset=1, chunk_size=chunk)
    gc_src, gc_tgt = torch.autograd.grad(loss_c + reg_c, (src, tgt))
    assert torch.allclose(loss, loss_c, atol=1e-6) and torch.allclose(reg, reg_c, atol=1e-6)
    assert torch.allclose(g_src, gc_src, atol=1e-6) and torch.allclose(g_tgt, gc_tgt, atol=1e-6)


def test_amdim_nce_gradients_match_reference():
    src, tgt = _rand(3, 5, scale=2.0, seed=9), _rand(4, 5, 3, scale=2.0, seed=10)
    loss, reg = amdim_nce(src, tgt, pos_offset=1)
    g = torch.autograd.grad(loss + reg, (src, tgt))
    ref_loss, ref_reg = reference_nce(src, tgt, pos_offset=1)
    gr = torch.autograd.grad(ref_loss + ref_reg, (src, tgt))
    for a, b in zip(g, gr):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_amdim_nce_rejects_mismatched_feature_sizes():
    with pytest.raises(ValueError, match="feature sizes differ"):
        amdim_nce(torch.randn(2, 4), torch.randn(2, 5, 3))


def test_tanh_clip_bounds_identity_and_monotone():
    x = torch.linspace(-1000, 1000, 20001, dtype=torch.float64)
    y = tanh_clip(x, 20.0)
    assert bool((y.abs() <= 20.0).all())
    moderate = x.abs() <= 60
    assert bool((y[moderate].abs() < 20.0).all())
    assert bool((y[1:] >= y[:-1]).all())  # monotone non-decreasing
    assert bool((y[moderate][1:] > y[moderate][:-1]).all())  # strictly where not saturated
    small = torch.linspace(-0.5, 0.5, 101, dtype=torch.float64)
    assert torch.allclose(tanh_clip(small, 20.0), small, atol=1e-4)
    assert torch.equal(tanh_clip(x, 0.0), x)  # clip <= 0 disables


def _clean_pair(n=4, d=8, locs=3):
    """Orthonormal-ish setup: target image j is a scaled copy of source direction j at every location."""
    src = torch.eye(n, d) * 2.0
    tgt = torch.eye(n, d).unsqueeze(-1).repeat(1, 1, locs) * 2.0
    return src, tgt


def test_nce_positive_huge_drives_loss_to_zero():
    src, tgt = _clean_pair()
    base, _ = amdim_nce(src, tgt)
    loss, _ = amdim_nce(src * 20, tgt * 20)  # positives ~ +clip, negatives 0
    assert loss < base
    assert loss < 1e-4


def test_nce_negative_huge_increases_loss():
    src, tgt = _clean_pair()
    base, _ = amdim_nce(src, tgt)
    tgt2 = tgt.clone()
    tgt2[1, 0, 0] = 50.0  # one location of image 1 now matches source 0 strongly: a hard negative for row 0
    loss, _ = amdim_nce(src, tgt2)
    assert loss > base + 1.0


def test_nce_positive_location_is_not_in_its_own_denominator():
    """Other positive locations of the same image are not negatives: raising them must not hurt the others."""
    src = torch.ones(2, 4)
    tgt = torch.zeros(2, 4, 3)
    base, _ = amdim_nce(src, tgt)
    tgt2 = tgt.clone()
    tgt2[0, :, 0] = 5.0  # make ONE positive location of image 0 (for row 0) very similar
    loss_rows, _ = amdim_nce(src[1:], tgt2, pos_offset=1)  # row 1: image 0 is a negative there -> worse
    assert loss_rows > base
    # for row 0, locations 1, 2 keep their loss: the raised location is a positive, not a negative
    loss0, _ = amdim_nce(src[:1], tgt2)
    ref0, _ = reference_nce(src[:1], tgt2)
    assert torch.allclose(loss0.double(), ref0, atol=1e-6)
    assert loss0 < base  # only got better (one location now near-perfect, others unchanged)


def test_nce_gradients_finite_with_huge_inputs():
    src = (torch.randn(4, 16) * 1e4).requires_grad_(True)
    tgt = (torch.randn(4, 16, 5) * 1e4).requires_grad_(True)
    loss, reg = amdim_nce(src, tgt)
    assert torch.isfinite(loss) and torch.isfinite(reg)
    g = torch.autograd.grad(loss + reg, (src, tgt))
    assert all(bool(torch.isfinite(x).all()) for x in g)
    g_loss = torch.autograd.grad(amdim_nce(src, tgt)[0], src)[0]
    assert bool(torch.isfinite(g_loss).all())


def test_random_locations_picks_one_real_location_per_image():
    fmap = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = random_locations(fmap, torch.Generator().manual_seed(0))
    assert out.shape == (2, 3)
    flat = fmap.flatten(2)
    for i in range(2):
        matches = [(flat[i, :, k] == out[i]).all() for k in range(16)]
        assert sum(bool(m) for m in matches) == 1


def _location_index_map(b, h=5, w=5):
    """Feature map whose single channel holds each location's flat index: ``[b, 1, h, w]``."""
    return torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).repeat(b, 1, 1, 1)


def test_random_locations_uniform_and_independent_per_image():
    """AMDIM draws the 5x5 source location per image, uniformly: every location turns up equally often, the
    images of one batch get different locations, and the draw is not the same from batch to batch."""
    g = torch.Generator().manual_seed(0)
    b, draws = 8, 1000
    picks = torch.stack([random_locations(_location_index_map(b), g)[:, 0] for _ in range(draws)]).long()  # [draws, b]
    counts = torch.bincount(picks.flatten(), minlength=25).float()
    expected = b * draws / 25  # 320
    assert float(((counts - expected) ** 2 / expected).sum()) < 60  # chi-square, 24 dof: p ~ 1e-4
    assert int(counts.min()) > 0.7 * expected and int(counts.max()) < 1.3 * expected
    same_as_first = (picks == picks[:, :1]).float()[:, 1:].mean()  # P(image j shares image 0's location) = 1/25
    assert 0.02 < float(same_as_first) < 0.07
    for j in range(b):  # every image position sees every location
        assert torch.bincount(picks[:, j], minlength=25).min() > 0
    assert float((picks[1:] == picks[:-1]).float().mean()) < 0.07  # a new draw each call


def test_random_locations_follow_the_global_rng_without_a_generator():
    fmap = _location_index_map(64)
    torch.manual_seed(3)
    a = random_locations(fmap)
    torch.manual_seed(3)
    assert torch.equal(a, random_locations(fmap))
    assert len(set(a[:, 0].tolist())) > 10  # 64 images: not one location for all


def test_random_locations_use_the_given_generator():
    fmap = _location_index_map(32)
    torch.manual_seed(1)
    a = random_locations(fmap, torch.Generator().manual_seed(9))
    torch.manual_seed(2)  # the global RNG is not what decides
    b = random_locations(fmap, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    assert not torch.equal(a, random_locations(fmap, torch.Generator().manual_seed(10)))


def test_tanh_clip_default_and_small_clips():
    x = torch.tensor([-100.0, -0.3, 0.0, 0.3, 100.0])
    assert torch.allclose(tanh_clip(x), 20.0 * torch.tanh(x / 20.0))
    assert torch.allclose(tanh_clip(x, 0.5), 0.5 * torch.tanh(x / 0.5))  # a clip below 1 still clips
    assert float(tanh_clip(x, 0.5).abs().max()) <= 0.5
