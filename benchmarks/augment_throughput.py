"""Where the augmentation cost goes: per-image views in a loader worker vs batched views on the training device.

For each image size, on the same decoded images (RSICD shards under ``--data``, or the built-in synthetic data with
``--data synthetic``), in one process with one torch thread:

* ``cpu path, per worker``: samples/s of the per-image path a loader worker runs with ``data.augment=cpu``
  (``TwoViews``: flip, two crops, colour jitter, grayscale, normalise, on PIL images);
* ``device path, per worker``: samples/s of what a worker still does with ``data.augment=device`` (``BaseImage``:
  resize + centre crop to the uint8 base square);
* ``device path, batched``: pairs/s of ``DeviceViews`` on ``--device`` (batch ``--batch``), the part moved to the
  training device; and, when kornia is installed, the same pipeline as ``kornia.augmentation`` for comparison
  (kornia draws one colour-operation order per batch: not AMDIM's distribution, a speed reference only).

Decoding is not counted (images are decoded once, up front). The workers a configuration needs at a training rate
R are about R / (per-worker rate). Example:

    PYTHONPATH=src python benchmarks/augment_throughput.py --data ../shared/data --n 512 --device cpu
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from tvdim.config import DataConfig
from tvdim.data.device_aug import DeviceViews, base_side
from tvdim.data.transforms import hue_jitter
from tvdim.data.pipeline import BaseImage
from tvdim.data.sample import Sample
from tvdim.data.sources import _items, build_source
from tvdim.data.transforms import MEAN, STD, TwoViews
from tvdim.train.device import resolve_device


def images(data: str, n: int) -> list[Any]:
    if data == "synthetic":
        cfg = DataConfig(format="synthetic", synth_train=n)
    else:
        cfg = DataConfig(format="wds", path=str(Path(data) / "rsicd" / "rsicd-train-{000000..000008}.tar"),
                         shuffle_buffer=0, text_key="txt")
    out = []
    for s in _items(build_source(cfg, "train", None)):
        if isinstance(s, Sample):
            out.append(s.image.convert("RGB"))
            if len(out) >= n:
                break
    return out


def rate(fn: Callable[[], int], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        done = fn()
        sync()
        out.append(done / (time.perf_counter() - t))
    return statistics.median(out)


def kornia_views(size: int) -> Any:
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    geo = (K.RandomCrop((32, 32), padding=4, padding_mode="reflect") if size == 32 else
           K.RandomResizedCrop((size, size), scale=(0.3, 1.0), ratio=(0.7, 1.4)))
    return K.AugmentationSequential(geo, K.ColorJitter(0.4, 0.4, 0.4, hue_jitter(size), p=0.8), K.RandomGrayscale(p=0.25),
                                    K.Normalize(torch.tensor(MEAN), torch.tensor(STD)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder holding rsicd/, or 'synthetic'")
    ap.add_argument("--sizes", default="32,64,128")
    ap.add_argument("--n", type=int, default=256, help="images per timing")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="benchmarks/out/augment_throughput.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()}, 1 thread)"
    pics = images(args.data, args.n)
    print(f"{len(pics)} images from {args.data}; batched views on {name}; torch {torch.__version__}")
    print(f"{'size':>4} {'cpu path /worker':>17} {'device path /worker':>20} {'batched pairs/s':>16} {'kornia':>8}")
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        two, base = TwoViews(size), BaseImage(size)
        cpu = rate(lambda: sum(1 for p in pics if two(p)), args.repeats, lambda: None)
        worker = rate(lambda: sum(1 for p in pics if base(p)), args.repeats, lambda: None)
        b = base_side(size)
        u8 = torch.randint(0, 256, (args.batch, 3, b, b), dtype=torch.uint8).to(device)
        views = DeviceViews(size)
        batched = rate(lambda: len(views(u8, 0)[0]), args.repeats, sync)
        kv = kornia_views(size)
        korn = None
        if kv is not None:
            kv = kv.to(device)
            korn = rate(lambda: len(kv(u8.float() / 255)) + len(kv(u8.float() / 255)) - args.batch, args.repeats,
                        sync)
        rows.append({"size": size, "cpu_path_per_worker": cpu, "device_path_per_worker": worker,
                     "batched_pairs_per_s": batched, "kornia_pairs_per_s": korn})
        print(f"{size:>4} {cpu:>17.0f} {worker:>20.0f} {batched:>16.0f} {korn or float('nan'):>8.0f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": name, "torch": torch.__version__, "date": datetime.now(timezone.utc)
                               .isoformat(), "args": vars(args), "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
