"""The end-to-end benchmark (benchmarks/e2e.py): the steady-state rate from a run's metrics, and one tiny run."""
from __future__ import annotations

import json
import math

import pytest


def test_steady_state_pools_the_intervals_after_the_first(e2e):
    """Batch 64, log every 10 steps, 35 steps: the last interval is 5 steps. By hand: the intervals after the
    first hold 640 + 640 + 320 samples in 640/320 + 640/640 + 320/160 = 5 s, so 1600 / 5 = 320 samples/s (not the
    mean of the logged rates, 373, nor anything with the first interval's 100); data waits 0.5 + 0.25 + 0 of 5 s."""
    records = [
        {"step": 20, "samples_seen": 1280, "samples_per_s": 320.0, "data_wait_s": 0.5, "loss/nce": 1.0},
        {"step": 10, "samples_seen": 640, "samples_per_s": 100.0, "data_wait_s": 6.0, "loss/nce": 1.0},
        {"step": 30, "samples_seen": 1920, "samples_per_s": 640.0, "data_wait_s": 0.25},
        {"step": 35, "samples_seen": 2240, "samples_per_s": 160.0, "data_wait_s": 0.0},
        {"step": 35, "data_quality": {"bad": 0}},
    ]
    s = e2e.steady_state(records)
    assert s["samples_per_s"] == pytest.approx(320.0)
    assert s["data_wait_fraction"] == pytest.approx(0.15)
    assert s["seconds"] == pytest.approx(5.0)
    assert s["samples"] == 1600
    assert s["intervals"] == 3
    assert s["first_interval_samples_per_s"] == 100.0


def test_steady_state_needs_an_interval_after_the_warm_up(e2e):
    with pytest.raises(ValueError, match="at least two"):
        e2e.steady_state([{"step": 10, "samples_seen": 640, "samples_per_s": 100.0, "data_wait_s": 1.0},
                          {"step": 10, "data_quality": {}}])


def test_row_ratio_and_time_split(e2e):
    e2e_rate = {"samples_per_s": 100.0, "data_wait_fraction": 0.25}
    step = {"samples_per_s": 400.0, "median_step_s": 0.16}
    r = e2e.row(32, 64, "2", e2e_rate, step)
    assert r["ratio"] == pytest.approx(0.25)
    assert r["e2e_s_per_step"] == pytest.approx(0.64)
    assert r["wait_s_per_step"] == pytest.approx(0.16)
    assert r["other_s_per_step"] == pytest.approx(0.64 - 0.16 - 0.16)


@pytest.mark.parametrize("argv", [["--data", "synthetic", "--steps", "5", "--log-every", "3"],
                                  ["--data", "synthetic", "--set", "data.workers=2"],
                                  ["--data", "/nonexistent-tvdim-data"]])
def test_bad_arguments_are_usage_errors(e2e, argv):
    with pytest.raises(SystemExit) as exc:
        e2e.parse_args(argv)
    assert exc.value.code == 2


def test_tiny_run_on_synthetic_data(e2e, tmp_path):
    out = tmp_path / "e2e.json"
    steps, log_every, batch = 6, 2, 8
    result = e2e.main(["--data", "synthetic", "--size", "32", "--batch", str(batch), "--workers", "0,auto",
                       "--steps", str(steps), "--log-every", str(log_every), "--bench-steps", "2", "--warmup", "1",
                       "--ndf", "8", "--n-rkhs", "32", "--n-depth", "1", "--text-dim", "32", "--device", "cpu",
                       "--set", "data.synth_train=64", "text.vocab_size=100", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert {"device", "torch", "date", "args"} <= set(saved)
    assert saved["args"]["workers"] == "0,auto" and "data.format=synthetic" in saved["overrides"]
    step = saved["step"]
    assert step["median_step_s"] > 0 and step["samples_per_s"] == pytest.approx(batch / step["median_step_s"])
    assert [r["workers"] for r in saved["rows"]] == ["0", "auto"]
    for r in saved["rows"]:
        run = r["e2e"]
        # records at step 1 (a run's first step is always logged), then every log_every steps; the first
        # interval (step 1: start-up) is dropped
        assert run["intervals"] == steps // log_every
        assert run["samples"] == (steps - 1) * batch  # the first interval (step 1) is left out
        assert r["e2e_samples_per_s"] == pytest.approx(run["samples"] / run["seconds"])
        assert r["step_samples_per_s"] == step["samples_per_s"]
        assert r["ratio"] == pytest.approx(r["e2e_samples_per_s"] / r["step_samples_per_s"])
        assert 0.0 <= r["data_wait_fraction"] <= 1.0
        assert math.isclose(r["e2e_s_per_step"], r["wait_s_per_step"] + r["compute_s_per_step"]
                            + r["other_s_per_step"])
    assert saved["rows"][0]["e2e"]["data_workers"] == 0
