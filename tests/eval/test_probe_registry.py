"""The probe registry: evaluate runs every registered probe on each label task and writes its columns; a probe
added by one decorated function appears in the results without touching evaluate."""
from __future__ import annotations

import pytest
import torch

from tvdim.config import EvalConfig
from tvdim.eval.probe_registry import PROBES, ProbeTask, register_probe, run_probes


def task(**kw) -> ProbeTask:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(12) % 3
    feats = torch.nn.functional.one_hot(y, 3).float() + 0.01 * torch.randn(12, 3, generator=g)
    e = EvalConfig(**{"linear_epochs": 2, "mlp_epochs": 1, "few_shot": 0, "logreg_cs": (), **kw})
    return ProbeTask(feats, y, feats, y, 3, e, 0, False)


def test_built_in_probes_and_their_columns():
    assert list(PROBES) == ["linear", "mlp", "knn", "few_shot", "logreg"]
    assert set(run_probes(task())) == {"linear", "mlp", "knn"}  # few-shot off, no scikit-learn probe
    assert set(run_probes(task(few_shot=2, few_shot_draws=1, few_shot_epochs=1))) == {"linear", "mlp", "knn",
                                                                                       "linear_2shot"}
    assert run_probes(task(knn_k=3))["knn"] == 1.0  # separable features


def test_a_registered_probe_adds_its_columns():
    @register_probe("mean-label-test")
    def probe(t: ProbeTask) -> dict[str, float]:
        return {"mean_label": float(t.test_labels.float().mean())}
    try:
        assert run_probes(task())["mean_label"] == pytest.approx(1.0)
    finally:
        del PROBES["mean-label-test"]


def test_registering_a_probe_twice_is_refused():
    with pytest.raises(ValueError, match="'knn' is registered twice"):
        register_probe("knn")(lambda t: {})
