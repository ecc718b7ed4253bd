"""RSICD through every caption format: the same images pretrain and evaluate from WebDataset shards, from
CSV + image folder and from COCO JSON (both written by ``tvdim data convert``), with the same sample counts.

  python benchmarks/formats_check.py [--data ../shared/data] [--steps 30] [--out benchmarks/out/formats]
Prints one row per format (training samples, probe train / test sizes, accuracies) and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from tvdim.config import load_config
from tvdim.data.sources import build_source
from tvdim.eval.evaluate import evaluate
from tvdim.train.trainer import pretrain

TINY = ["model.image_size=32", "model.ndf=16", "model.n_rkhs=64", "model.n_depth=1", "text.dim=64", "text.layers=1",
        "train.batch_size=32", "optim.warmup_steps=5", "train.progress=false", "eval.linear_epochs=5",
        "eval.mlp_epochs=2", "data.workers=0"]


def convert(pattern: str, out: Path, to: str) -> None:
    if not out.exists():
        subprocess.run([sys.executable, "-m", "tvdim.cli", "data", "convert", pattern, "--out", str(out), "--to", to],
                       check=True, capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", default="benchmarks/out/formats")
    args = p.parse_args()
    rs = Path(args.data) / "rsicd"
    out = Path(args.out)
    train, test = str(rs / "rsicd-train-{000000..000008}.tar"), str(rs / "rsicd-test-{000000..000001}.tar")
    for split, pattern in (("train", train), ("test", test)):
        for to in ("csv", "coco"):
            convert(pattern, out / f"{split}-{to}", to)
    formats = {
        "wds": ["data.format=wds", f"data.path={train}", f"data.eval_train_path={train}", f"data.eval_test_path={test}"],
        "csv": ["data.format=csv", f"data.path={out}/train-csv/data.csv", f"data.eval_train_path={out}/train-csv/data.csv",
                f"data.eval_test_path={out}/test-csv/data.csv", "data.label_key=label"],
        "coco": ["data.format=coco", f"data.path={out}/train-coco/captions.json",
                 f"data.eval_train_path={out}/train-coco/captions.json",
                 f"data.eval_test_path={out}/test-coco/captions.json"],
    }
    rows = {}
    for name, data in formats.items():
        cfg = load_config(overrides=TINY + data + ["train.method=tvdim", f"train.steps={args.steps}",
                                                   f"train.out_dir={out}/run-{name}"])
        src = build_source(cfg.data, "train", 32)
        t0 = time.perf_counter()
        res = pretrain(cfg, overwrite=True)
        ev = evaluate(res.checkpoint)
        rows[name] = {"train_samples": len(src), "probe_train": ev["n_train"], "test": ev["n_test"],
                      "linear": ev["tasks"]["label"]["linear"], "knn": ev["tasks"]["label"]["knn"],
                      "R@1_i2t": ev.get("retrieval", {}).get("i2t_R@1"), "seconds": round(time.perf_counter() - t0, 1)}
        print(name, rows[name], flush=True)
    (out / "formats.json").write_text(json.dumps(rows, indent=2))
    print("\n| format | training samples | probe train | test | linear | k-NN | wall s |\n|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['train_samples']} | {r['probe_train']} | {r['test']} | {100 * r['linear']:.1f} | "
              f"{100 * r['knn']:.1f} | {r['seconds']} |")


if __name__ == "__main__":
    main()
