"""Offline probes on frozen features: linear, MLP, k-NN."""
from __future__ import annotations

import pytest
import torch

from tvdim.eval.probes import accuracy, knn_accuracy, train_probe



def gaussian_blobs(n_per, n_classes=4, d=16, sep=6.0, seed=0, noise_seed=None):
    """``n_per`` points per class around centres drawn from ``seed``; the noise comes from ``noise_seed``
    (default: the same generator, after the centres)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, d, generator=g) * sep
    if noise_seed is not None:
        g = torch.Generator().manual_seed(noise_seed)
    x = torch.cat([centres[c] + torch.randn(n_per, d, generator=g) for c in range(n_classes)])
    y = torch.arange(n_classes).repeat_interleave(n_per)
    return x, y


@pytest.fixture(scope="module")
def blobs():
    xtr, ytr = gaussian_blobs(50, seed=0)
    xte, yte = gaussian_blobs(25, seed=0, noise_seed=1)  # same centres, fresh noise
    return xtr, ytr, xte, yte


def test_blobs_test_points_are_not_training_points(blobs):
    xtr, _, xte, _ = blobs
    assert float(torch.cdist(xte, xtr).min()) > 0.5  # unit noise in 16 dimensions: no copy, not even close


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_probe_separable_reaches_perfect_accuracy(kind, blobs):
    xtr, ytr, xte, yte = blobs
    head = train_probe(kind, xtr, ytr, 4, epochs=15, batch_size=32, lr=1e-2)
    assert not head.training
    assert accuracy(head, xte, yte) >= 0.97


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_probe_random_labels_at_chance(kind):
    g = torch.Generator().manual_seed(3)
    xtr, xte = torch.randn(300, 16, generator=g), torch.randn(400, 16, generator=g)
    ytr, yte = torch.randint(0, 4, (300,), generator=g), torch.randint(0, 4, (400,), generator=g)
    head = train_probe(kind, xtr, ytr, 4, epochs=5, batch_size=64, lr=1e-2)
    assert 0.1 <= accuracy(head, xte, yte) <= 0.4


def test_knn_separable_and_random(blobs):
    xtr, ytr, xte, yte = blobs
    assert knn_accuracy(xtr, ytr, xte, yte, k=5) >= 0.97
    g = torch.Generator().manual_seed(4)
    xa, xb = torch.randn(400, 16, generator=g), torch.randn(400, 16, generator=g)
    ya, yb = torch.randint(0, 4, (400,), generator=g), torch.randint(0, 4, (400,), generator=g)
    assert 0.1 <= knn_accuracy(xa, ya, xb, yb, k=10) <= 0.4


def test_knn_ignores_unlabelled_and_handles_small_train():
    xtr = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    ytr = torch.tensor([0, 1, -1])
    xte = torch.tensor([[2.0, 0.1], [0.1, 3.0], [1.0, 1.0]])
    yte = torch.tensor([0, 1, -1])
    assert knn_accuracy(xtr, ytr, xte, yte, k=1) == 1.0
    assert knn_accuracy(xtr, ytr, xte, yte, k=50) in (0.5, 1.0)  # k capped at the 2 labelled rows


def test_knn_chunking_same_result(blobs):
    xtr, ytr, xte, yte = blobs
    assert knn_accuracy(xtr, ytr, xte, yte, k=7, chunk=3) == knn_accuracy(xtr, ytr, xte, yte, k=7)


def test_accuracy_scores_every_labelled_row_only():
    head = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1, -1])
    assert accuracy(head, x, y) == pytest.approx(2 / 3)


def test_probe_training_skips_unlabelled_rows(blobs):
    xtr, ytr, xte, yte = blobs
    y = ytr.clone()
    y[::2] = -1
    head = train_probe("linear", xtr, y, 4, epochs=15, batch_size=32, lr=1e-2)
    assert accuracy(head, xte, yte) >= 0.95


def test_mlp_bn_statistics_not_updated_by_scoring(blobs):
    xtr, ytr, xte, yte = blobs
    head = train_probe("mlp", xtr, ytr, 4, epochs=2, batch_size=32)
    bn = next(m for m in head.modules() if isinstance(m, torch.nn.BatchNorm1d))
    mean, var, count = bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()
    head.train()  # even if a caller left it in training mode
    accuracy(head, xte * 10 + 3, yte)
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    assert torch.equal(bn.num_batches_tracked, count)


def test_linear_probe_is_seeded():
    x, y = gaussian_blobs(10, seed=5)
    a = train_probe("linear", x, y, 4, epochs=2, batch_size=8, seed=3)
    torch.rand(5)  # the global RNG moved on
    b = train_probe("linear", x, y, 4, epochs=2, batch_size=8, seed=3)
    c = train_probe("linear", x, y, 4, epochs=2, batch_size=8, seed=4)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.weight, c.weight)


def test_mlp_probe_is_seeded():
    x, y = gaussian_blobs(10, seed=5)
    a = train_probe("mlp", x, y, 4, epochs=2, batch_size=8, seed=3)
    torch.rand(5)
    b = train_probe("mlp", x, y, 4, epochs=2, batch_size=8, seed=3)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.state_dict().values(), b.state_dict().values()))
