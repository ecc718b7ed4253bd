"""Offline probes on frozen features: linear and MLP classifiers (AMDIM's protocol), and k-NN."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import classifier_loss
from ..models.heads import mlp_head


def train_probe(kind: str, x_train: torch.Tensor, y_train: torch.Tensor, n_classes: int, epochs: int = 30,
                batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> nn.Module:
    """Fit a ``linear`` or ``mlp`` classifier on ``x_train [N, D]`` / ``y_train [N]`` (rows with -1 skipped)."""
    with torch.random.fork_rng(devices=[]):  # initialisation, order and dropout all follow ``seed``
        torch.manual_seed(seed)
        return _fit(kind, x_train, y_train, n_classes, epochs, batch_size, lr)


def _fit(kind: str, x_train: torch.Tensor, y_train: torch.Tensor, n_classes: int, epochs: int, batch_size: int,
         lr: float) -> nn.Module:
    keep = y_train >= 0
    x, y = x_train[keep], y_train[keep]
    head = nn.Linear(x.shape[1], n_classes) if kind == "linear" else mlp_head(x.shape[1], n_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    head.train()
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2 and kind == "mlp":  # BatchNorm needs two rows
                continue
            loss = classifier_loss(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return head.eval()


def few_shot_indices(y: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``k`` labelled rows per class of ``y [N]`` (all rows of a class with fewer), drawn with ``seed``;
    rows labelled -1 are never drawn. Returns ``[<= k * n_classes]`` sorted indices."""
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c in torch.unique(y[y >= 0]).tolist():
        rows = (y == c).nonzero().flatten()
        picked.append(rows[torch.randperm(rows.numel(), generator=gen)[:k]])
    return torch.cat(picked).sort().values if picked else torch.zeros(0, dtype=torch.long)


def few_shot_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                      n_classes: int, k: int = 10, draws: int = 5, epochs: int = 300, lr: float = 1e-3,
                      seed: int = 0) -> float:
    """Linear probe trained on ``k`` labelled images per class (full batch, ``epochs`` Adam steps), scored on the
    whole test set; mean over ``draws`` random draws of the labelled subset (draw d uses seed ``seed + d``)."""
    accs = []
    for d in range(draws):
        idx = few_shot_indices(y_train, k, seed + d)
        head = train_probe("linear", x_train[idx], y_train[idx], n_classes, epochs, max(1, idx.numel()), lr, seed + d)
        accs.append(accuracy(head, x_test, y_test))
    return sum(accs) / len(accs)


def accuracy(head: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy over every labelled row of the test set (eval mode: BN statistics frozen)."""
    with torch.no_grad():  # a block, not a decorator: mutmut skips decorated functions
        keep = y >= 0
        return (head.eval()(x[keep]).argmax(1) == y[keep]).float().mean().item()


def knn_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                 k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> float:
    """k-NN on L2-normalised features, votes weighted by ``exp(cos / temperature)`` (InstDisc / DINO style)."""
    with torch.no_grad():  # a block, not a decorator: mutmut skips decorated functions
        ktr, kte = y_train >= 0, y_test >= 0
        xtr, ytr = F.normalize(x_train[ktr], dim=1), y_train[ktr]
        xte, yte = F.normalize(x_test[kte], dim=1), y_test[kte]
        n_classes = int(max(ytr.max(), yte.max())) + 1
        k = min(k, xtr.shape[0])
        correct = 0
        for i in range(0, xte.shape[0], chunk):
            sims, idx = (xte[i:i + chunk] @ xtr.T).topk(k, dim=1)
            votes = torch.zeros(sims.shape[0], n_classes).scatter_add_(1, ytr[idx], (sims / temperature).exp())
            correct += (votes.argmax(1) == yte[i:i + chunk]).sum().item()
        return correct / max(1, xte.shape[0])
