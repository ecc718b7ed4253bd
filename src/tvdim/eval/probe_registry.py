"""The evaluation-probe registry: each probe scores one label task of frozen features and returns its columns of
the results row. ``evaluate`` runs every registered probe in order; adding a probe is its function (in
:mod:`tvdim.eval.probes` or its own module) plus one decorated entry here::

    @register_probe("ncm")
    def _ncm(t: ProbeTask) -> dict[str, float]:
        return {"ncm": nearest_class_mean_accuracy(t.train_feats, t.train_labels, t.test_feats, t.test_labels)}
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import EvalConfig
from ..registry import register
from . import logistic
from . import probes as P


@dataclass(frozen=True)
class ProbeTask:
    """One label task: features ``[N, D]`` and labels ``[N]`` (-1 = unlabelled) of both splits."""

    train_feats: torch.Tensor
    train_labels: torch.Tensor
    test_feats: torch.Tensor
    test_labels: torch.Tensor
    n_classes: int
    ecfg: EvalConfig
    seed: int
    logreg: bool  # scikit-learn is installed and eval.logreg_cs is set


Probe = Callable[[ProbeTask], dict[str, float]]
PROBES: dict[str, Probe] = {}


def register_probe(name: str) -> Callable[[Probe], Probe]:
    def add(fn: Probe) -> Probe:
        return register(PROBES, name, fn, "probe")
    return add


def run_probes(task: ProbeTask) -> dict[str, float]:
    row: dict[str, float] = {}
    for probe in PROBES.values():
        row.update(probe(task))
    return row


def _trained(kind: str, epochs: int, t: ProbeTask) -> dict[str, float]:
    e = t.ecfg
    head = P.train_probe(kind, t.train_feats, t.train_labels, t.n_classes, epochs, e.probe_batch, e.probe_lr, t.seed)
    return {kind: P.accuracy(head, t.test_feats, t.test_labels)}


@register_probe("linear")
def _linear(t: ProbeTask) -> dict[str, float]:
    return _trained("linear", t.ecfg.linear_epochs, t)


@register_probe("mlp")
def _mlp(t: ProbeTask) -> dict[str, float]:
    return _trained("mlp", t.ecfg.mlp_epochs, t)


@register_probe("knn")
def _knn(t: ProbeTask) -> dict[str, float]:
    return {"knn": P.knn_accuracy(t.train_feats, t.train_labels, t.test_feats, t.test_labels, t.ecfg.knn_k)}


@register_probe("few_shot")
def _few_shot(t: ProbeTask) -> dict[str, float]:
    e = t.ecfg
    if e.few_shot <= 0:  # a full-label probe can hide representation differences
        return {}
    return {f"linear_{e.few_shot}shot": P.few_shot_accuracy(
        t.train_feats, t.train_labels, t.test_feats, t.test_labels, t.n_classes, e.few_shot, e.few_shot_draws,
        e.few_shot_epochs, e.probe_lr, t.seed)}


@register_probe("logreg")
def _logreg(t: ProbeTask) -> dict[str, float]:
    if not t.logreg:
        return {}
    e = t.ecfg
    lr = logistic.logistic_probe(t.train_feats, t.train_labels, t.test_feats, t.test_labels, e.logreg_cs,
                                 e.logreg_val_fraction, t.seed)
    return {"logreg": lr["accuracy"], "logreg_balanced": lr["balanced_accuracy"], "logreg_C": lr["C"]}


__all__ = ["ProbeTask", "PROBES", "register_probe", "run_probes"]
