"""Guards on the map-style pretraining pipeline: ``data.paired_fraction`` keeps that fraction of captions (the same
images each epoch), each epoch draws new augmentations, and :class:`ResumableSampler` gives a new permutation each
epoch split into disjoint per-rank shares that cover the data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tvdim.data.pipeline import PretrainDataset, ResumableSampler, keeps_caption
from tvdim.data.sample import Sample


def _samples(n: int, size: int = 40) -> list[Sample]:
    rng = np.random.default_rng(0)
    return [Sample(f"k{i:04d}", Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB"),
                   [f"caption {i}"], {"label": i % 3}) for i in range(n)]


# ---- data.paired_fraction ---------------------------------------------------------------------------------------

def test_keeps_caption_keeps_the_configured_fraction():
    n = 4000
    for fraction in (0.1, 0.25, 0.5, 0.8):
        kept = sum(keeps_caption(i, fraction, seed=3) for i in range(n)) / n
        assert abs(kept - fraction) < 0.04, (fraction, kept)
    assert not any(keeps_caption(i, 0.0, seed=3) for i in range(n))
    assert all(keeps_caption(i, 1.0, seed=3) for i in range(n))


def test_keeps_caption_sets_are_nested():
    """An image paired at a lower fraction stays paired at a higher one (one hash per image, one threshold)."""
    low = {i for i in range(2000) if keeps_caption(i, 0.2, seed=1)}
    high = {i for i in range(2000) if keeps_caption(i, 0.6, seed=1)}
    assert low and low < high


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_pretrain_dataset_paired_fraction(fraction):
    """Through the dataset: about ``fraction`` of items keep their caption, the others have '' ; the same images
    keep it in every epoch (a resumed run pairs the same images). (Views drawn on the device: the cheap base
    image; the caption rule is the same for both augment modes.)"""
    n = 200
    ds = PretrainDataset(_samples(n, 8), 32, seed=5, paired_fraction=fraction, augment="device")
    ep0 = [ds[i].caption for i in range(n)]
    ep1 = [ds[n + i].caption for i in range(n)]
    kept0 = [bool(c) for c in ep0]
    assert kept0 == [bool(c) for c in ep1]
    assert all(c in ("", f"caption {i}") for i, c in enumerate(ep0))
    share = sum(kept0) / n
    if fraction in (0.0, 1.0):
        assert share == fraction
    else:
        assert abs(share - fraction) < 0.1, share


# ---- augmentation seed: (seed, epoch, index) --------------------------------------------------------------------

def test_map_style_views_change_with_the_epoch_and_repeat_within_it():
    n = 4
    ds = PretrainDataset(_samples(n), 32, seed=0)
    for i in range(n):
        a, again, later = ds[i], ds[i], ds[2 * n + i]  # epoch 0, epoch 0 again, epoch 2
        assert torch.equal(a.x1, again.x1) and torch.equal(a.x2, again.x2)  # resumable: same code, same views
        assert not torch.equal(a.x1, later.x1), f"index {i}: epoch 2 repeats epoch 0's augmentation"
        assert not torch.equal(a.x2, later.x2)


# ---- ResumableSampler -------------------------------------------------------------------------------------------

def _epochs(sampler: ResumableSampler, n_epochs: int) -> list[list[int]]:
    """Per epoch, the sample indices in the order yielded (codes decoded: epoch * N + index)."""
    per = sampler.per_epoch * sampler.bs
    it = iter(sampler)
    out = []
    for e in range(n_epochs):
        codes = [next(it) for _ in range(per)]
        assert all(c // sampler.n == e for c in codes), "codes must carry their epoch"
        out.append([c % sampler.n for c in codes])
    return out


def test_sampler_permutation_changes_every_epoch():
    n = 48
    epochs = _epochs(ResumableSampler(n, 8, seed=1), 4)
    for order in epochs:
        assert sorted(order) == list(range(n))  # world 1, n a multiple of the batch: each epoch a permutation
    assert len({tuple(o) for o in epochs}) == 4, "an epoch repeats another's order"


def test_sampler_resume_continues_the_same_stream():
    n, bs = 40, 4
    full = iter(ResumableSampler(n, bs, seed=2))
    codes = [next(full) for _ in range(3 * n)]
    resumed = iter(ResumableSampler(n, bs, seed=2, start_batch=13))
    assert [next(resumed) for _ in range(3 * n - 13 * bs)] == codes[13 * bs:]


@pytest.mark.parametrize("world,n,bs", [(2, 40, 4), (3, 48, 4), (4, 35, 2)])
def test_sampler_rank_shares_are_disjoint_and_cover(world, n, bs):
    """In each epoch the ranks read disjoint index sets, each per_epoch * batch long, whose union is every
    sample of the full global batches (all of the data when it divides evenly)."""
    samplers = [ResumableSampler(n, bs, seed=7, rank=r, world_size=world) for r in range(world)]
    per_epoch = n // (bs * world)
    shares = [_epochs(s, 2) for s in samplers]
    for e in range(2):
        sets = [set(shares[r][e]) for r in range(world)]
        for r in range(world):
            assert len(shares[r][e]) == len(sets[r]) == per_epoch * bs
            for q in range(r):
                assert not sets[r] & sets[q], f"epoch {e}: ranks {q} and {r} overlap"
        union = set().union(*sets)
        assert len(union) == per_epoch * bs * world
        if n % (bs * world) == 0:
            assert union == set(range(n))
