"""``tvdim evaluate``: frozen-encoder linear / MLP / k-NN accuracy per label task, plus retrieval recall."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from ..config import DataConfig, EvalConfig
from ..data.eval_image import eval_source
from ..errors import DataError
from ..loading import Loaded, load_method
from ..method_spec import text_methods
from ..train.device import resolve_workers
from . import logistic
from .caption_retrieval import caption_retrieval
from .features import FeatureSet, extract_features
from .probe_registry import ProbeTask, run_probes
from .zeroshot import class_names, zeroshot_scores

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
    has_text = loaded.method.text_encoder is not None and loaded.tokenizer is not None
    text = (loaded.method.text_encoder, loaded.tokenizer) if has_text else None
    te_src = eval_source(data, "test", size)
    workers = resolve_workers(data.workers, torch.device(device))
    te = extract_features(enc, te_src, size, ecfg.probe_batch, device, workers, data.max_bad_fraction, "test")
    tr = None  # a test set without labels needs no probe-training split (retrieval only)
    if any(int((y >= 0).sum()) > 0 for y in te.labels.values()):
        tr = extract_features(enc, eval_source(data, "eval_train", size), size, ecfg.probe_batch, device,
                              workers, data.max_bad_fraction, "eval_train")
    results: dict[str, Any] = {"method": cfg.train.method, "checkpoint": str(loaded.path), "step": loaded.step,
                               "n_train": len(tr) if tr is not None else 0, "n_test": len(te),
                               "feature_dim": te.feats.shape[1], "tasks": {}}
    use_logreg = bool(ecfg.logreg_cs) and tr is not None and logistic.sklearn_available()
    if ecfg.logreg_cs and tr is not None and not use_logreg:
        log.info("scikit-learn is not installed: skipping the logistic-regression probe (%s)", logistic.INSTALL_HINT)
    for task in sorted(set(tr.labels) & set(te.labels)) if tr is not None else []:
        ytr, yte = tr.labels[task], te.labels[task]
        if int((ytr >= 0).sum()) == 0 or int((yte >= 0).sum()) == 0:
            continue
        n_classes = int(max(ytr.max(), yte.max())) + 1
        row: dict[str, Any] = {"n_classes": n_classes}
        unseen = sorted(set(yte[yte >= 0].tolist()) - set(ytr[ytr >= 0].tolist()))
        if unseen:  # a probe cannot predict these: every such test image counts as an error
            row["test_classes_without_training_examples"] = unseen
            row["n_test_unseen"] = int(sum(int((yte == c).sum()) for c in unseen))
            names = _names(te_src, data, task)
            named = f" (names: {', '.join(names[c] for c in unseen)})" if names and max(unseen) < len(names) else ""
            msg = (f"task {task}: test classes {', '.join(map(str, unseen))}{named} have no probe-training example "
                   f"({row['n_test_unseen']} of {int((yte >= 0).sum())} labelled test images); the probes cannot "
                   "predict them, so their accuracy counts these images as errors")
            log.warning("%s", msg)
            results.setdefault("warnings", []).append(msg)
        row.update(run_probes(ProbeTask(tr.feats, ytr, te.feats, yte, n_classes, ecfg, seed, use_logreg)))
        results["tasks"][task] = row
    if text is not None and ecfg.zeroshot_templates:
        add_zeroshot(results["tasks"], text, te, class_names(te_src, data, "test"), ecfg.zeroshot_templates)
    ret = caption_retrieval(*text, te.feats, te.all_captions, ecfg.retrieval_max) if text is not None else None
    if ret is not None:
        results["retrieval"] = ret
    if not results["tasks"] and ret is None:
        raise DataError(nothing_to_evaluate(cfg.train.method, te, has_text))
    results["data_quality"] = {"eval_train": tr.skipped if tr is not None else {}, "test": te.skipped}
    results["seconds"] = round(time.perf_counter() - t0, 2)
    if out_dir is not None:
        write_results(results, Path(out_dir))
    return results


def _names(source: Any, data: DataConfig, task: str) -> list[str] | None:
    """Class names of ``task`` for a warning, when the data names them (never fails)."""
    try:
        return list(class_names(source, data, "test").get(task) or []) or None
    except Exception:  # noqa: BLE001 - only for a nicer message
        return None


def add_zeroshot(tasks: dict[str, dict[str, Any]], text: tuple[Any, Any], te: FeatureSet,
                 names: dict[str, list[str]], templates: tuple[str, ...]) -> None:
    """Zero-shot accuracy for every labelled test task the data names the classes of (added to ``tasks``)."""
    for task, y in te.labels.items():
        if task not in names or int((y >= 0).sum()) == 0:
            continue
        if int(y.max()) >= len(names[task]):
            log.warning("zero-shot skipped for task %s: label %d but only %d class names", task, int(y.max()),
                        len(names[task]))
            continue
        zs = zeroshot_scores(*text, te.feats, y, names[task], templates)
        row = tasks.setdefault(task, {"n_classes": len(names[task])})
        row.update(zeroshot=zs["accuracy"], zeroshot_balanced=zs["balanced_accuracy"])


def nothing_to_evaluate(method: str, te: FeatureSet, has_text: bool) -> str:
    """Why neither a probe nor retrieval could run, in one line."""
    n_cap = sum(1 for caps in te.all_captions if caps)
    labelled = any(int((y >= 0).sum()) > 0 for y in te.labels.values())
    if not labelled and n_cap == 0:
        return ("the test set has neither labels nor captions: nothing to evaluate (probes need labels, retrieval "
                "needs captions)")
    why = ["no label task is present in both the probe training set and the test set" if labelled
           else "the test set has no labels"]
    if n_cap == 0:
        why.append("it has no captions for retrieval")
    elif not has_text:
        why.append(f"method '{method}' has no text encoder for retrieval (use a {text_methods()} checkpoint)")
    else:
        why.append(f"retrieval needs at least 10 captioned test images, found {n_cap}")
    return "; ".join(why)


# result key -> column title; the first three are always shown, the others when some row has them
COLUMNS = {"linear": "linear", "mlp": "MLP", "knn": "kNN", "logreg": "logreg", "zeroshot": "zero-shot"}


def markdown_row(name: str, res: dict[str, Any], tasks: list[str],
                 kinds: tuple[str, ...] = ("linear", "mlp", "knn")) -> str:
    cells = [name]
    for t in tasks:
        r = res.get("tasks", {}).get(t, {})
        cells += [f"{100 * r[k]:.1f}" if r.get(k) is not None else "-" for k in kinds]
    ret = res.get("retrieval")
    cells += [_recalls(ret, "i2t"), _recalls(ret, "t2i"),
              f"{ret['i2t_medr']:.0f} / {ret['t2i_medr']:.0f}" if ret and "i2t_medr" in ret else "-"]
    return "| " + " | ".join(cells) + " |"


def _recalls(ret: dict[str, Any] | None, way: str) -> str:
    """``R@1 / R@5 / R@10 (chance R@10)`` in %, for one direction of retrieval."""
    if not ret or f"{way}_R@1" not in ret:
        return "-"
    got = " / ".join(f"{100 * ret[f'{way}_R@{k}']:.1f}" if f"{way}_R@{k}" in ret else "-" for k in (1, 5, 10))
    chance = ret.get(f"{way}_chance_R@10")
    return got + (f" ({100 * chance:.1f})" if chance is not None else "")


def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    """One row per method: linear / MLP / k-NN accuracy (%) per task (plus logreg and zero-shot when any row has
    them), retrieval R@1 / R@5 / R@10 each way with the chance R@10 of the same test set, and the median ranks."""
    tasks = sorted({t for r in rows.values() for t in r.get("tasks", {})})
    present = {k for r in rows.values() for row in r.get("tasks", {}).values() for k in row}
    kinds = tuple(k for i, k in enumerate(COLUMNS) if i < 3 or k in present)
    head = (["method"] + [f"{t} {COLUMNS[k]}" for t in tasks for k in kinds]
            + ["i2t R@1/5/10 (chance R@10)", "t2i R@1/5/10 (chance R@10)", "medr i2t / t2i"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [markdown_row(name, res, tasks, kinds) for name, res in rows.items()]
    return "\n".join(lines)


def write_results(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    (out_dir / "results.md").write_text(markdown_table({results["method"]: results}) + "\n")
    log.info("wrote %s", out_dir / "results.json")


__all__ = ["evaluate", "markdown_table", "write_results"]
