"""Small reports: a markdown comparison table and PNG plots (training curves, accuracy per method)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .eval.evaluate import markdown_table  # noqa: E402
from .train.runlog import read_jsonl  # noqa: E402


def plot_curves(run_dirs: dict[str, Path], path: Path) -> Path | None:
    """Total loss and online-probe accuracy against step, one line per method (from each run's metrics.jsonl)."""
    logs = {m: [r for r in read_jsonl(Path(d) / "metrics.jsonl") if "loss/total" in r] for m, d in run_dirs.items()}
    logs = {m: r for m, r in logs.items() if r}
    if not logs:
        return None
    probe_keys = sorted({k for recs in logs.values() for k in recs[-1] if k.startswith("probe_acc/")})
    fig, axes = plt.subplots(1, 1 + len(probe_keys), figsize=(4.2 * (1 + len(probe_keys)), 3.4), squeeze=False)
    for m, recs in logs.items():
        steps = [r["step"] for r in recs]
        axes[0][0].plot(steps, [r["loss/total"] for r in recs], label=m)
        for ax, key in zip(axes[0][1:], probe_keys):
            ax.plot(steps, [r.get(key, float("nan")) for r in recs], label=m)
    axes[0][0].set(title="training loss (total)", xlabel="step")
    for ax, key in zip(axes[0][1:], probe_keys):
        ax.set(title=f"online probe: {key.split('/')[-1]}", xlabel="step", ylim=(0, 1))
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy(results: dict[str, dict[str, Any]], path: Path, metric: str = "linear") -> Path:
    """Grouped bars: ``metric`` accuracy per task, one bar per method."""
    tasks = sorted({t for r in results.values() for t in r.get("tasks", {})})
    methods = list(results)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(tasks) * max(1, len(methods)) / 3, 3.4))
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        vals = [100 * results[m].get("tasks", {}).get(t, {}).get(metric, 0.0) for t in tasks]
        ax.bar([j + i * width for j in range(len(tasks))], vals, width, label=m)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tasks))], tasks)
    ax.set(ylabel=f"{metric} probe accuracy (%)", ylim=(0, 100), title=f"{metric} probe on frozen features")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out_dir: Path, results: dict[str, dict[str, Any]], run_dirs: dict[str, Path],
                 title: str = "tvdim report", notes: str = "") -> Path:
    """``report.md`` with the table and the two plots, in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = plot_curves(run_dirs, out_dir / "curves.png")
    acc = plot_accuracy(results, out_dir / "accuracy.png")
    lines = [f"# {title}", "", notes, "", "Accuracy (%) of probes on frozen r1 features, scored on the whole test "
             "split; retrieval R@1 (%) on held-out pairs.", "", markdown_table(results), "", f"![accuracy]({acc.name})"]
    if curves:
        lines += ["", f"![training curves]({curves.name})"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
