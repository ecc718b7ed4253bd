"""Classifier heads shared by the supervised method and the evaluation probes."""
from __future__ import annotations

from torch import nn


def mlp_head(n_in: int, n_classes: int, hidden: int = 1024, dropout: float = 0.2) -> nn.Sequential:
    """AMDIM's MLP classifier: dropout -> Linear -> BN -> ReLU -> dropout -> Linear; ``[B, n_in] -> [B, n_classes]``."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, n_classes))


__all__ = ["mlp_head"]
