"""Tuned logistic-regression probe: C chosen on a validation split of the training data, balanced accuracy."""
from __future__ import annotations

import pytest
import torch

from tvdim.eval.metrics import accuracy_scores

pytest.importorskip("sklearn")
from tvdim.eval.logistic import carve_validation, logistic_probe, select_c  # noqa: E402

CS = (1e-4, 1e-2, 1.0, 100.0)


def blobs(n_per, n_classes=3, d=20, sep=1.0, seed=0, noise_seed=None):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, d, generator=g) * sep
    if noise_seed is not None:
        g = torch.Generator().manual_seed(noise_seed)
    x = torch.cat([centres[c] + torch.randn(n_per, d, generator=g) for c in range(n_classes)])
    return x, torch.arange(n_classes).repeat_interleave(n_per)


def test_balanced_accuracy_definition():
    y = torch.tensor([0] * 9 + [1, -1])
    pred = torch.zeros(11, dtype=torch.long)
    s = accuracy_scores(pred, y)  # the -1 row is ignored
    assert s["accuracy"] == pytest.approx(0.9) and s["balanced_accuracy"] == pytest.approx(0.5)
    s = accuracy_scores(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    assert s["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_carve_validation_is_stratified_disjoint_and_seeded():
    y = torch.tensor([0] * 10 + [1] * 5 + [2] + [-1] * 3)
    fit, val = carve_validation(y, 0.2, seed=0)
    assert set(fit.tolist()).isdisjoint(val.tolist())
    assert sorted(fit.tolist() + val.tolist()) == list(range(16))  # every labelled row, no unlabelled one
    assert (y[val] == 0).sum() == 2 and (y[val] == 1).sum() == 1 and (y[val] == 2).sum() == 0
    assert torch.equal(carve_validation(y, 0.2, seed=0)[1], val)
    assert not torch.equal(carve_validation(y, 0.2, seed=1)[1], val)


def test_separable_data_scores_perfectly():
    xtr, ytr = blobs(40, sep=4.0, noise_seed=1)
    xte, yte = blobs(20, sep=4.0, noise_seed=2)
    r = logistic_probe(xtr, ytr, xte, yte, CS)
    assert r["accuracy"] >= 0.97 and r["balanced_accuracy"] >= 0.97
    assert r["C"] in CS and r["val_accuracy"] >= 0.9


def test_c_is_chosen_on_training_data_only():
    xtr, ytr = blobs(30, sep=0.6, d=40, noise_seed=1)
    xte, yte = blobs(60, sep=0.6, d=40, noise_seed=2)
    chosen, _ = select_c(xtr, ytr, CS, 0.2, seed=0)
    a = logistic_probe(xtr, ytr, xte, yte, CS)
    assert a["C"] == chosen
    for s in range(6):  # whatever the test labels are, the same C is used (the test set is not looked at)
        g = torch.Generator().manual_seed(s)
        b = logistic_probe(xtr, ytr, xte, yte[torch.randperm(len(yte), generator=g)], CS)
        assert b["C"] == chosen


def test_regularisation_is_actually_tuned():
    # a rare but separable class: strong regularisation predicts the majority class, validation picks a large C
    x, _ = blobs(80, n_classes=2, sep=2.0, d=5, noise_seed=3)
    keep = torch.cat([torch.arange(80), torch.arange(80, 92)])
    x, y = x[keep], torch.tensor([0] * 80 + [1] * 12)
    xte, _ = blobs(80, n_classes=2, sep=2.0, d=5, noise_seed=4)
    yte = torch.tensor([0] * 80 + [1] * 80)
    tuned = logistic_probe(x, y, xte, yte, CS)
    strong = logistic_probe(x, y, xte, yte, (1e-4,))
    assert tuned["C"] >= 1.0
    assert tuned["balanced_accuracy"] > strong["balanced_accuracy"] + 0.1
    # many noisy dimensions and few rows: validation picks strong regularisation
    xtr, ytr = blobs(12, sep=0.5, d=200, noise_seed=1)
    assert select_c(xtr, ytr, CS, 0.2, seed=0)[0] < 1.0


def test_unlabelled_rows_skipped_and_single_class():
    xtr, ytr = blobs(20, sep=4.0, noise_seed=1)
    y = ytr.clone()
    y[::3] = -1
    xte, yte = blobs(10, sep=4.0, noise_seed=2)
    yte = yte.clone()
    yte[0] = -1
    assert logistic_probe(xtr, y, xte, yte, CS)["accuracy"] >= 0.95
    one = logistic_probe(xtr, torch.zeros_like(ytr), xte, yte, CS)
    assert one["accuracy"] == pytest.approx(float((yte[yte >= 0] == 0).float().mean())) and one["C"] is None
