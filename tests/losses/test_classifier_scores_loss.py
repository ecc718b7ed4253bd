"""AMDIM classifier loss and global-to-local similarity matrices."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tvdim.losses import classifier_loss
from tvdim.losses.scores import global_local_scores


def test_classifier_loss_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g) * 30
    y = torch.tensor([0, 3, 1, 2, 2, 0])
    clipped = 10 * torch.tanh(logits / 10)
    logp = clipped - torch.logsumexp(clipped, dim=1, keepdim=True)
    expected = -logp[torch.arange(6), y].mean() + 1e-3 * (logits ** 2).mean()
    assert torch.allclose(classifier_loss(logits, y), expected, atol=1e-5)


def test_classifier_loss_ignores_unlabelled_rows():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 3, generator=g)
    y = torch.tensor([0, -1, 2, -1, 1])
    keep = y >= 0
    assert torch.allclose(classifier_loss(logits, y), classifier_loss(logits[keep], y[keep]))
    logits2 = logits.clone()
    logits2[1] = 1000.0  # would dominate the regulariser if it were counted
    assert torch.allclose(classifier_loss(logits2, y), classifier_loss(logits, y))


def test_classifier_loss_all_unlabelled_is_zero_and_differentiable():
    logits = torch.randn(3, 4, requires_grad=True)
    loss = classifier_loss(logits, torch.full((3,), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and bool((logits.grad == 0).all())


def test_global_local_scores_vs_loops():
    g = torch.Generator().manual_seed(2)
    glob, local = torch.randn(3, 5, generator=g), torch.randn(4, 6, 5, generator=g)
    mask = torch.rand(4, 6, generator=g) > 0.4
    mask[:, 0] = True
    got = global_local_scores(glob, local, mask)
    got_all = global_local_scores(glob, local)
    assert got.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            cos = [F.cosine_similarity(glob[i], local[j, l], dim=0) for l in range(6)]
            assert torch.allclose(got_all[i, j], torch.stack(cos).mean(), atol=1e-5)
            kept = [c for c, m in zip(cos, mask[j]) if m]
            assert torch.allclose(got[i, j], torch.stack(kept).mean(), atol=1e-5)


def test_global_local_scores_masked_values_ignored():
    g = torch.Generator().manual_seed(3)
    glob, local = torch.randn(2, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    a = global_local_scores(glob, local, mask)
    local2 = local.clone()
    local2[0, 2] = 99.0
    local2[1, 1:] = -7.0
    assert torch.allclose(a, global_local_scores(glob, local2, mask))


def test_global_local_scores_single_valid_token_is_its_own_mean():
    g = torch.Generator().manual_seed(4)
    glob, local = torch.randn(2, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[:, 2] = True  # one token per item
    got = global_local_scores(glob, local, mask)
    want = F.normalize(glob, dim=-1) @ F.normalize(local[:, 2], dim=-1).T
    assert torch.allclose(got, want, atol=1e-6)
