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


def _protocol_by_hand(kind, x, y, n_classes, epochs, batch_size, lr, seed):
    """The probe protocol written out: seeded init; Adam(lr, weight decay 1e-6) with a cosine schedule over the
    epochs; each epoch one shuffled pass in minibatches; MLP batches of one row are skipped (BatchNorm)."""
    from tvdim.losses import classifier_loss
    from tvdim.models.heads import mlp_head

    keep = y >= 0
    x, y = x[keep], y[keep]
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], n_classes) if kind == "linear" else mlp_head(x.shape[1], n_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    head.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(batch_size):
            if kind == "mlp" and len(idx) == 1:
                continue
            opt.zero_grad()
            classifier_loss(head(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
    return head


@pytest.mark.parametrize("kind,n", [("linear", 13), ("mlp", 13), ("mlp", 10)])  # last batch: 1, 1, 2 rows
def test_probe_training_follows_the_protocol(kind, n):
    x, y = gaussian_blobs(8, n_classes=2, d=6, seed=8)
    rows = torch.randperm(16, generator=torch.Generator().manual_seed(0))[:n + 1]
    x, y = x[rows], y[rows].clone()
    y[3] = -1  # unlabelled rows are left out before batching: n labelled rows in batches of 4
    got = train_probe(kind, x, y, 2, epochs=3, batch_size=4, lr=0.05, seed=2)
    want = _protocol_by_hand(kind, x, y, 2, 3, 4, 0.05, 2)
    for (name, a), b in zip(got.state_dict().items(), want.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    assert not got.training


def test_probe_defaults():
    """30 epochs, batches of 256, lr 1e-3, seed 0 (300 rows: the batch size matters)."""
    x, y = gaussian_blobs(75, seed=9)
    a = train_probe("linear", x, y, 4)
    b = train_probe("linear", x, y, 4, epochs=30, batch_size=256, lr=1e-3, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def _ring(cosines, scale=1.0):
    """2-d vectors at the given cosines to (1, 0), each scaled by ``scale`` (a number or one per row)."""
    c = torch.tensor(cosines)
    v = torch.stack([c, (1 - c ** 2).sqrt()], dim=1)
    return v * torch.as_tensor(scale, dtype=torch.float32).reshape(-1, 1)


def test_knn_votes_are_weighted_by_exp_cos_over_temperature():
    """One class-0 neighbour at cos 0.99 against three class-1 neighbours at cos 0.8: with weights
    exp(cos / 0.07) class 0 wins (e^14.1 > 3 e^11.4); unweighted or at a high temperature class 1 would."""
    xtr = _ring([0.99, 0.8, 0.8, 0.8], scale=torch.tensor([0.1, 7.0, 3.0, 9.0]))  # norms must not matter
    ytr = torch.tensor([0, 1, 1, 1])
    xte, yte = torch.tensor([[2.0, 0.0], [0.05, 0.0]]), torch.tensor([0, 0])  # each test row normalised alone
    assert knn_accuracy(xtr, ytr, xte, yte, k=4) == 1.0  # default temperature 0.07
    assert knn_accuracy(xtr, ytr, xte, yte, k=4, temperature=1.0) == 0.0


def test_knn_default_k_is_20():
    """Ten class-0 neighbours at cos 0.6, eleven class-1 ones at 0.599: the 20 nearest hold ten of each and class 0
    wins on similarity; the 21st neighbour would tip the vote to class 1."""
    xtr = _ring([0.6] * 10 + [0.599] * 11)
    ytr = torch.tensor([0] * 10 + [1] * 11)
    xte, yte = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    assert knn_accuracy(xtr, ytr, xte, yte) == 1.0
    assert knn_accuracy(xtr, ytr, xte, yte, k=21) == 0.0


def test_knn_k_larger_than_the_training_set_in_high_dimension():
    x, y = gaussian_blobs(2, n_classes=2, d=16, seed=10)  # 4 training rows, 16 dimensions, k = 10
    xte, yte = gaussian_blobs(3, n_classes=2, d=16, seed=10, noise_seed=11)
    assert knn_accuracy(x, y, xte, yte, k=10) == 1.0


def test_knn_single_test_row():
    xtr, ytr = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    assert knn_accuracy(xtr, ytr, torch.tensor([[0.9, 0.1]]), torch.tensor([0]), k=1) == 1.0


def test_few_shot_indices_per_class_seeded():
    from tvdim.eval.probes import few_shot_indices

    y = torch.tensor([0, 1, 0, 2, 1, 0, -1, 0, 1, 2, 0])
    idx = few_shot_indices(y, 2, seed=3)
    assert idx.tolist() == sorted(idx.tolist())
    assert sorted(y[idx].tolist()) == [0, 0, 1, 1, 2, 2]  # two per class, never an unlabelled row
    assert torch.equal(few_shot_indices(y, 2), few_shot_indices(y, 2, seed=0))
    draws = {tuple(few_shot_indices(y, 2, seed=s).tolist()) for s in range(8)}
    assert len(draws) > 1  # the seed decides which rows
    torch.manual_seed(0)
    a = few_shot_indices(y, 2, seed=5)
    torch.manual_seed(1)
    assert torch.equal(a, few_shot_indices(y, 2, seed=5))  # not the global RNG
    assert sorted(few_shot_indices(y, 10).tolist()) == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10]  # fewer than k: all
    empty = few_shot_indices(torch.tensor([-1, -1]), 3)
    assert empty.dtype == torch.long and empty.numel() == 0


def test_few_shot_accuracy_is_the_mean_over_seeded_draws():
    from tvdim.eval.probes import few_shot_accuracy, few_shot_indices

    xtr, ytr = gaussian_blobs(6, n_classes=3, d=4, sep=1.0, seed=12)
    xte, yte = gaussian_blobs(10, n_classes=3, d=4, sep=1.0, seed=12, noise_seed=13)
    want = []
    for d in range(3):
        idx = few_shot_indices(ytr, 2, 4 + d)
        head = train_probe("linear", xtr[idx], ytr[idx], 3, 20, idx.numel(), 0.05, 4 + d)
        want.append(accuracy(head, xte, yte))
    got = few_shot_accuracy(xtr, ytr, xte, yte, 3, k=2, draws=3, epochs=20, lr=0.05, seed=4)
    assert got == pytest.approx(sum(want) / 3)
    assert len(set(want)) > 1  # the draws differ, so a wrong seed per draw would show
    xtr, ytr = gaussian_blobs(12, n_classes=3, d=4, sep=1.0, seed=12)  # more than k = 10 per class
    defaults = few_shot_accuracy(xtr, ytr, xte, yte, 3)
    assert defaults == few_shot_accuracy(xtr, ytr, xte, yte, 3, k=10, draws=5, epochs=300, lr=1e-3, seed=0)
