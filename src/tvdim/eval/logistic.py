"""A tuned logistic-regression probe (scikit-learn, the optional ``eval`` extra).

The regularisation strength C is chosen on a validation split carved from the probe-training data (stratified,
seeded); the test split is never looked at until the chosen C has been refitted on all the probe-training rows.
Features are standardised with statistics of the rows the model is fitted on. Reports accuracy and balanced
accuracy on the test split, the chosen C and its validation accuracy.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .metrics import accuracy_scores

INSTALL_HINT = "pip install 'tvdim[eval]'"


def sklearn_available() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def carve_validation(y: torch.Tensor, fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the labelled rows of ``y [N]`` into (fit, validation) row indices, per class: ``round(fraction * n)``
    (at least one) of each class with two or more rows goes to validation; single-row classes stay in fit."""
    g = torch.Generator().manual_seed(seed)
    fit, val = [], []
    for c in torch.unique(y[y >= 0]):
        rows = torch.nonzero(y == c).flatten()
        rows = rows[torch.randperm(len(rows), generator=g)]
        n_val = 0 if len(rows) < 2 else min(len(rows) - 1, max(1, round(fraction * len(rows))))
        val.append(rows[:n_val])
        fit.append(rows[n_val:])
    return torch.cat(fit).sort().values, torch.cat(val).sort().values


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000, random_state=seed))
    # One BLAS thread: these small problems (N x D with D of a few hundred) gain nothing from more, and BLAS threads
    # competing with torch's OpenMP threads made each fit 10x slower on a 2-core machine (docs/results.md, Demo).
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def select_c(x_train: torch.Tensor, y_train: torch.Tensor, cs: Sequence[float], val_fraction: float = 0.2,
             seed: int = 0) -> tuple[float, float | None]:
    """The C of ``cs`` with the best accuracy on a validation split of the training rows (ties: the smaller C,
    i.e. the stronger regularisation). Returns ``(C, validation accuracy)``. Sees training data only."""
    fit, val = carve_validation(y_train, val_fraction, seed)
    if len(val) == 0 or len(torch.unique(y_train[fit])) < 2:
        return float(min(cs, key=lambda c: abs(np.log10(c)))), None  # nothing to choose on: the C closest to 1
    x, y = x_train.float().numpy(), y_train.numpy()
    scores = []
    for c in sorted(cs):
        model = _fit(x[fit.numpy()], y[fit.numpy()], c, seed)
        scores.append((float((model.predict(x[val.numpy()]) == y[val.numpy()]).mean()), -c))
    acc, neg_c = max(scores)
    return -neg_c, acc


def logistic_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                   cs: Sequence[float], val_fraction: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """Choose C on the training rows (:func:`select_c`), refit on all of them, score the labelled test rows.

    ``x_* [N, D]``, ``y_* [N]`` (-1 = unlabelled, skipped). Returns ``accuracy``, ``balanced_accuracy``,
    ``C``, ``val_accuracy`` (None when no validation rows could be carved).
    """
    keep = y_train >= 0
    xtr, ytr = x_train[keep], y_train[keep]
    kte = y_test >= 0
    if len(torch.unique(ytr)) < 2:  # one class: nothing to fit, every test row gets it
        c, val_acc, pred = None, None, torch.full((int(kte.sum()),), int(ytr[0]))
    else:
        c, val_acc = select_c(xtr, ytr, cs, val_fraction, seed)
        model = _fit(xtr.float().numpy(), ytr.numpy(), c, seed)
        pred = torch.from_numpy(model.predict(x_test[kte].float().numpy()))
    return {**accuracy_scores(pred, y_test[kte]), "C": c, "val_accuracy": val_acc}


__all__ = ["logistic_probe", "select_c", "carve_validation", "sklearn_available", "INSTALL_HINT"]
