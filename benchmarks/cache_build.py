"""The first pass with ``data.cache``: time to build the decoded-image cache of a training set, against one epoch of
decoding without it (the same images through today's per-image views, or the device path's base transform).

    python benchmarks/cache_build.py --data ../shared/data --size 64

Prints and writes (``--out``) seconds for: the cache build (memory), one uncached epoch of the per-image views
(``data.augment=cpu``), one uncached epoch of the base transform (``data.augment=device``), and the cache size.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from tvdim.config import load_config
from tvdim.data import cache
from tvdim.data.pipeline import BaseImage, TwoViews
from tvdim.data.sources import build_source


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--out", default="benchmarks/out/cache_build.json")
    args = p.parse_args()
    rsicd = Path(args.data) / "rsicd"
    cfg = load_config(overrides=["data.format=wds", f"data.path={rsicd}/rsicd-train-{{000000..000008}}.tar",
                                 "data.text_key=txt:only"])
    src = build_source(cfg.data, "train", args.size, require_text=True)
    t0 = time.perf_counter()
    images, meta = cache.build(src, args.size, cfg.data.max_bad_fraction)
    build_s = time.perf_counter() - t0
    rows = {"cache_build_s": round(build_s, 2), "images": len(meta.keys), "side": meta.side,
            "cache_mb": round(images.nbytes / 1e6, 1)}
    for name, tf in (("epoch_cpu_views_s", TwoViews(args.size)), ("epoch_base_transform_s", BaseImage(args.size))):
        t0 = time.perf_counter()
        for s in cache._samples(src):
            if not hasattr(s, "reason"):
                tf(s.image)
        rows[name] = round(time.perf_counter() - t0, 2)
    rows |= {"size": args.size, "device": f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
             "torch": torch.__version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    print(json.dumps(rows, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
