"""Classification scores shared by the probes: accuracy and balanced accuracy over labelled rows."""
from __future__ import annotations

import torch


def accuracy_scores(pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """``pred``, ``y``: ``[N]`` class indices (``y`` = -1 rows are ignored).

    ``accuracy``: fraction right. ``balanced_accuracy``: mean over the classes present in ``y`` of the fraction
    of that class predicted right (scikit-learn's definition), so a majority-class guess scores 1 / n_classes.
    """
    keep = y >= 0
    pred, y = pred[keep].long(), y[keep].long()
    if y.numel() == 0:
        raise ValueError("no labelled rows to score")
    right = (pred == y).float()
    per_class = [right[y == c].mean() for c in torch.unique(y)]
    return {"accuracy": right.mean().item(), "balanced_accuracy": torch.stack(per_class).mean().item()}


__all__ = ["accuracy_scores"]
