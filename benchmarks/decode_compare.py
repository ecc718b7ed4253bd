"""JPEG decoding for training: PIL full decode, PIL draft (DCT-scaled) decode, and torchvision's decoder, each
followed by the resize to the augmentation's base square (what a cache build or a device-path worker does).

    python benchmarks/decode_compare.py --data ../shared/data --size 32 --n 2000

Reads ``--n`` JPEGs from the RSICD train shards (or CIFAR-10 with ``--set cifar10``) once into memory, then times
each path over the same bytes, interleaved over ``--repeats`` rounds (median per path), and reports each path's
largest and mean absolute difference from PIL's full decode after the resize (uint8 levels); two more rows time the
decoders alone (no resize). Writes JSON to --out.
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from PIL import Image

from tvdim.data.device_aug import base_side, base_transform


def read_jpegs(pattern_dir: Path, prefix: str, n: int) -> list[bytes]:
    out: list[bytes] = []
    for shard in sorted(pattern_dir.glob(f"{prefix}-*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar:
                if m.name.endswith(".jpg"):
                    out.append(tar.extractfile(m).read())
                    if len(out) == n:
                        return out
    return out


def pil_full(b: bytes, tf) -> torch.Tensor:
    return tf(Image.open(io.BytesIO(b)).convert("RGB"))


def pil_draft(b: bytes, tf, side: int) -> torch.Tensor:
    img = Image.open(io.BytesIO(b))
    img.draft("RGB", (side, side))
    return tf(img.convert("RGB"))


def tv_decode(b: bytes, side: int) -> torch.Tensor:
    import torchvision.transforms.v2.functional as F
    from torchvision.io import ImageReadMode, decode_jpeg

    x = decode_jpeg(torch.frombuffer(bytearray(b), dtype=torch.uint8), mode=ImageReadMode.RGB)
    x = F.resize(x, side, interpolation=F.InterpolationMode.BICUBIC, antialias=True)
    return F.center_crop(x, side)


def decode_only_pil(b: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(b))
    img.load()
    return img.convert("RGB")


def decode_only_tv(b: bytes) -> Image.Image:
    from torchvision.io import ImageReadMode, decode_jpeg

    x = decode_jpeg(torch.frombuffer(bytearray(b), dtype=torch.uint8), mode=ImageReadMode.RGB)
    return Image.fromarray(x.permute(1, 2, 0).numpy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--set", default="rsicd", choices=("rsicd", "cifar10"))
    p.add_argument("--size", type=int, default=32, help="model size; the base square is base_side(size)")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/out/decode_compare.json")
    args = p.parse_args()
    blobs = read_jpegs(Path(args.data) / args.set, f"{args.set}-train", args.n)
    side, tf = base_side(args.size), base_transform(args.size)
    paths = {"pil_full": lambda b: pil_full(b, tf), "pil_draft": lambda b: pil_draft(b, tf, side),
             "torchvision": lambda b: tv_decode(b, side),
             # decoding alone (no resize): PIL's decoder against torchvision's, both ending in a PIL image
             "decode_only_pil": decode_only_pil, "decode_only_torchvision": decode_only_tv}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            for b in blobs:
                fn(b)
            times[name].append(time.perf_counter() - t0)
    ref = [paths["pil_full"](b).int() for b in blobs[:200]]
    rows: dict[str, dict] = {}
    for name, fn in paths.items():
        med = statistics.median(times[name])
        rows[name] = {"images_per_s": round(len(blobs) / med, 1),
                      "vs_pil_full": round(statistics.median(times["pil_full"]) / med, 3)}
        if name.startswith("decode_only"):
            rows[name]["vs_decode_only_pil"] = round(statistics.median(times["decode_only_pil"]) / med, 3)
            continue
        diffs = [(fn(b).int() - r).abs() for b, r in zip(blobs[:200], ref)]
        rows[name] |= {"max_abs_diff": int(max(d.max() for d in diffs)),
                       "mean_abs_diff": round(float(torch.stack([d.float().mean() for d in diffs]).mean()), 3)}
    res = {"set": args.set, "size": args.size, "side": side, "n": len(blobs), "rows": rows,
           "source_size": list(Image.open(io.BytesIO(blobs[0])).size),
           "device": f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)", "torch": torch.__version__,
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    print(json.dumps(res, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
