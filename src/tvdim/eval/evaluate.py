"""``tvdim evaluate``: frozen-encoder linear / MLP / k-NN accuracy per label task, plus retrieval recall."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ..api import Loaded, embed_texts, load_method
from ..config import DataConfig, EvalConfig
from ..data.sources import build_source
from ..errors import DataError
from .features import extract_features
from .probes import accuracy, few_shot_accuracy, knn_accuracy, train_probe
from .retrieval import retrieval_recall

log = logging.getLogger("tvdim.eval")


def evaluate(checkpoint: str | Path | Loaded, data: DataConfig | None = None, ecfg: EvalConfig | None = None,
             out_dir: str | Path | None = None, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Evaluate the image encoder of ``checkpoint`` (a path, or one already read by :func:`load_method`) on
    ``data`` (default: the data it was trained on).

    Probes train on the ``eval_train`` split and are scored on the whole ``test`` split. Writes
    ``results.json`` and ``results.md`` into ``out_dir`` when given. Returns the results dict.
    """
    t0 = time.perf_counter()
    loaded = checkpoint if isinstance(checkpoint, Loaded) else load_method(checkpoint, device)
    cfg = loaded.config
    data = data or cfg.data
    ecfg = ecfg or cfg.eval
    size = cfg.model.image_size
    enc = loaded.method.image_encoder
    sets = {}
    for split in ("eval_train", "test"):
        src = build_source(data, split, size)
        sets[split] = extract_features(enc, src, size, ecfg.probe_batch, device, data.workers,
                                       data.max_bad_fraction, split)
    tr, te = sets["eval_train"], sets["test"]
    results: dict[str, Any] = {"method": cfg.train.method, "checkpoint": str(loaded.path), "step": loaded.step,
                               "n_train": len(tr), "n_test": len(te), "feature_dim": tr.feats.shape[1],
                               "tasks": {}}
    for task in sorted(set(tr.labels) & set(te.labels)):
        ytr, yte = tr.labels[task], te.labels[task]
        if int((ytr >= 0).sum()) == 0 or int((yte >= 0).sum()) == 0:
            continue
        n_classes = int(max(ytr.max(), yte.max())) + 1
        row = {"n_classes": n_classes}
        for kind, epochs in (("linear", ecfg.linear_epochs), ("mlp", ecfg.mlp_epochs)):
            head = train_probe(kind, tr.feats, ytr, n_classes, epochs, ecfg.probe_batch, ecfg.probe_lr, seed)
            row[kind] = accuracy(head, te.feats, yte)
        row["knn"] = knn_accuracy(tr.feats, ytr, te.feats, yte, ecfg.knn_k)
        if ecfg.few_shot > 0:  # a full-label probe can hide representation differences
            row[f"linear_{ecfg.few_shot}shot"] = few_shot_accuracy(
                tr.feats, ytr, te.feats, yte, n_classes, ecfg.few_shot, ecfg.few_shot_draws, ecfg.few_shot_epochs,
                ecfg.probe_lr, seed)
        results["tasks"][task] = row
    if not results["tasks"]:
        raise DataError("no label task is present in both the probe training set and the test set")
    if loaded.method.text_encoder is not None and loaded.tokenizer is not None:
        pairs = [i for i, c in enumerate(te.captions) if c.strip()][: ecfg.retrieval_max]
        if len(pairs) >= 10:
            txt = embed_texts(loaded.method.text_encoder, loaded.tokenizer, [te.captions[i] for i in pairs])
            results["retrieval"] = {"n_pairs": len(pairs), **retrieval_recall(te.feats[pairs], txt.cpu())}
    results["data_quality"] = {"eval_train": tr.skipped, "test": te.skipped}
    results["seconds"] = round(time.perf_counter() - t0, 2)
    if out_dir is not None:
        write_results(results, Path(out_dir))
    return results


def markdown_row(name: str, res: dict[str, Any], tasks: list[str]) -> str:
    cells = [name]
    for t in tasks:
        r = res.get("tasks", {}).get(t, {})
        cells += [f"{100 * r[k]:.1f}" if k in r else "-" for k in ("linear", "mlp", "knn")]
    ret = res.get("retrieval")
    cells += [f"{100 * ret['i2t_R@1']:.1f} / {100 * ret['t2i_R@1']:.1f}" if ret else "-"]
    return "| " + " | ".join(cells) + " |"


def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    """One row per method: linear / MLP / k-NN accuracy (%) per task, retrieval R@1 (image->text / text->image)."""
    tasks = sorted({t for r in rows.values() for t in r.get("tasks", {})})
    head = ["method"] + [f"{t} {k}" for t in tasks for k in ("linear", "MLP", "kNN")] + ["R@1 i2t / t2i"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [markdown_row(name, res, tasks) for name, res in rows.items()]
    return "\n".join(lines)


def write_results(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    (out_dir / "results.md").write_text(markdown_table({results["method"]: results}) + "\n")
    log.info("wrote %s", out_dir / "results.json")


__all__ = ["evaluate", "markdown_table", "write_results"]
