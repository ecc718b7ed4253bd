"""Data-loading throughput: decoded + augmented samples/s in one process (= per data-loader worker).

Formats: WebDataset shards of RSICD (streamed, shuffle buffer 256), the same samples converted to CSV + image
folder and to COCO JSON (in a temp dir), and the built-in synthetic generator (if ``tvdim.data.synthetic``
exists). Each is timed with and without JPEG draft decoding (draft = decode at reduced DCT scale when the
target size allows it) at image size 64, with ``RandomResizedCrop(64) + ColorJitter + ToTensor``.

    PYTHONPATH=src python benchmarks/data_throughput.py --data ../shared/data --n 2000 --repeats 3

Prints a table and writes ``benchmarks/out/data_throughput.json``; numbers are the median of ``--repeats``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from torchvision import transforms as T

from tvdim.config import DataConfig
from tvdim.data.formats.convert import wds_export
from tvdim.data.sample import Sample
from tvdim.data.sources import _items, build_source

SIZE = 64


def measure(make: Callable[[], Iterable[Any]], n: int, aug: Callable) -> float:
    """Samples/s over the first ``n`` usable samples of a fresh iterator (decode + augment)."""
    t0 = time.perf_counter()
    done = 0
    for s in make():
        if not isinstance(s, Sample):
            continue
        aug(s.image)
        done += 1
        if done >= n:
            break
    return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder holding rsicd/ (WebDataset shards)")
    ap.add_argument("--n", type=int, default=2000, help="samples per timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "data_throughput.json"))
    args = ap.parse_args()
    shards = Path(args.data) / "rsicd"
    n_shards = max(1, -(-args.n // 1000))
    pattern = str(shards / ("rsicd-train-{000000..%06d}.tar" % (n_shards - 1)))
    aug = T.Compose([T.RandomResizedCrop(SIZE), T.ColorJitter(0.4, 0.4, 0.4, 0.1), T.ToTensor()])
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        csv_file = wds_export(pattern, Path(tmp) / "csv", "csv")["file"]
        coco_file = wds_export(pattern, Path(tmp) / "coco", "coco")["file"]
        print(f"converted {pattern} to CSV + COCO in {time.perf_counter() - t0:.1f}s")
        cfgs = {"wds": DataConfig(format="wds", path=pattern, shuffle_buffer=256, text_key="txt"),
                "csv": DataConfig(format="csv", path=csv_file),
                "coco": DataConfig(format="coco", path=coco_file)}
        try:
            import tvdim.data.synthetic  # noqa: F401
            cfgs["synthetic"] = DataConfig(format="synthetic", synth_train=args.n)
        except ImportError:
            print("tvdim.data.synthetic not found: skipping synthetic")
        for name, cfg in cfgs.items():
            for draft in (False, True):
                size = SIZE if draft else None
                ds = build_source(cfg, "train", size)
                rates = [measure(lambda: _items(ds), args.n, aug) for _ in range(args.repeats)]
                results.append({"format": name, "draft": draft, "samples_per_s": round(statistics.median(rates), 1),
                                "repeats": [round(r, 1) for r in rates], "n": args.n})
                print(f"  {name:10s} draft={draft!s:5s} {results[-1]['samples_per_s']:8.1f} samples/s")
    print(f"\n{'format':10s} {'no draft':>10s} {'draft':>10s}   (samples/s per worker, median of {args.repeats})")
    for name in cfgs:
        r = {x["draft"]: x["samples_per_s"] for x in results if x["format"] == name}
        print(f"{name:10s} {r[False]:10.1f} {r[True]:10.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"image_size": SIZE, "cpu_count": os.cpu_count(), "data": str(shards), "pattern": pattern,
            "augment": "RandomResizedCrop(64)+ColorJitter(0.4,0.4,0.4,0.1)+ToTensor", "results": results}
    out.write_text(json.dumps(meta, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
