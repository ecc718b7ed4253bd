"""Training-step throughput of timm backbones under tvdim's objectives, and the same SimCLR step written with
lightly's own loss and projection head (same backbone, inputs and optimiser), side by side in one run.

Rows per (backbone, size, batch): ``simclr`` (NT-Xent), ``slip`` (simclr + image-text InfoNCE), ``amdim`` (AMDIM's
multi-scale NCE on the last two stages), ``tvdim-nce`` (amdim + InfoNCE) and, when lightly is installed,
``lightly-simclr``: ``SimCLRProjectionHead`` + ``NTXentLoss(temperature=0.1)`` on the same timm backbone, Adam with
tvdim's settings, bf16 autocast on a GPU as ours. Printed: samples/s, median step ms, CPU seconds per step (all
threads; on a CPU the ratios use it, as it moves less than wall time when other work shares the machine), MFU
(GPU), peak memory; the text term's cost (slip / simclr) and lightly-simclr / simclr (> 1: ours is faster).

    python benchmarks/backbone_throughput.py --backbones resnet18,resnet50,vit_small_patch16_224 --sizes 64,128 \
        --batch 128 --steps 3 --warmup 1 --out benchmarks/results/backbone_throughput_cpu.json
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import WORDS, count_flops, default_peak_tflops, make_batch, mfu, time_steps  # noqa: E402

from tvdim.config import load_config  # noqa: E402
from tvdim.methods import build_method  # noqa: E402
from tvdim.models.tokenizer import CaptionTokenizer  # noqa: E402
from tvdim.train.device import autocast, configure_backends, resolve_device, resolve_precision  # noqa: E402
from tvdim.train.optim import build_optimizer  # noqa: E402

VARIANTS = ("simclr", "slip", "amdim", "tvdim-nce", "lightly-simclr")


def tvdim_step(method: str, backbone: str, size: int, batch: int, tok, device, precision: str):
    cfg = load_config(overrides=[f"train.method={method}", f"model.backbone={backbone}", f"model.image_size={size}",
                                 "text.dim=256", "text.layers=2", "text.max_len=32"])
    torch.manual_seed(0)
    m = build_method(cfg, {}, tok.vocab_size).to(device).train()
    opt = build_optimizer(m, cfg, device)
    data = make_batch(size, batch, tok, device, False)

    def step() -> None:
        with autocast(precision, device):
            res = m(data)
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        opt.step()
    return step


def lightly_step(backbone: str, size: int, batch: int, device, precision: str):
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead

    from tvdim.models.timm_backbone import timm_kwargs
    import timm

    torch.manual_seed(0)
    body = timm.create_model(backbone, pretrained=False, num_classes=0, **timm_kwargs(backbone, size))
    head = SimCLRProjectionHead(body.num_features, body.num_features, 128)
    model = torch.nn.Sequential(body, head).to(device).train()
    crit = NTXentLoss(temperature=0.1)
    cfg = load_config()
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                           weight_decay=cfg.optim.weight_decay, **fast)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(batch, 3, size, size, generator=g).to(device)
    x2 = torch.randn(batch, 3, size, size, generator=g).to(device)

    def step() -> None:
        with autocast(precision, device):
            z = model(torch.cat([x1, x2]))
        loss = crit(*z.float().split(batch))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", default="resnet18,resnet50,vit_small_patch16_224")
    p.add_argument("--sizes", default="64,128")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--peak-tflops", dest="peak_tflops", type=float, default=None)
    p.add_argument("--out", default="benchmarks/out/backbone_throughput.json")
    args = p.parse_args()
    device = resolve_device(args.device)
    configure_backends(device)
    precision = resolve_precision(args.precision, device)
    cpu = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    peak = args.peak_tflops if args.peak_tflops is not None else default_peak_tflops(name)
    tok = CaptionTokenizer.train([" ".join(WORDS)] * 4, 200, 32)
    variants = args.variants.split(",")
    try:
        import lightly  # noqa: F401
    except ImportError:
        if "lightly-simclr" in variants:
            print("note: lightly-simclr skipped (pip install lightly)")
        variants = [v for v in variants if v != "lightly-simclr"]
    print(f"device: {name}; torch {torch.__version__}; precision {precision}; batch {args.batch}")
    rows = []
    for backbone in args.backbones.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            group = {}
            print(f"-- {backbone} @ {size} px\n{'variant':>15} {'samples/s':>10} {'step ms':>9} {'CPU s':>7} {'MFU':>6} "
                  f"{'peak MB':>8}")
            for v in variants:
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                step = (lightly_step(backbone, size, args.batch, device, precision) if v == "lightly-simclr"
                        else tvdim_step(v, backbone, size, args.batch, tok, device, precision))
                cpu0 = time.process_time()
                times = time_steps(step, args.steps, args.warmup, device)
                cpu_s = (time.process_time() - cpu0) / (args.steps + args.warmup)  # all threads, all steps
                med = statistics.median(times)
                flops = count_flops(step) if device.type == "cuda" else None
                u = mfu(flops, med, peak) if flops else None
                mem = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
                r = {"backbone": backbone, "size": size, "batch": args.batch, "variant": v, "precision": precision,
                     "median_step_s": med, "cpu_s_per_step": cpu_s, "samples_per_s": args.batch / med, "mfu": u,
                     "peak_mem_mb": mem,
                     "step_times": times}
                rows.append(r)
                group[v] = r
                print(f"{v:>15} {r['samples_per_s']:>10.1f} {1000 * med:>9.1f} {cpu_s:>7.2f} "
                      f"{'-' if u is None else f'{100 * u:.1f}%':>6} {'-' if mem is None else f'{mem:.0f}':>8}", flush=True)
            key = "median_step_s" if device.type == "cuda" else "cpu_s_per_step"  # CPU time resists a busy machine
            if "simclr" in group and "slip" in group:
                ratio = group["slip"][key] / group["simclr"][key]
                group["slip"]["text_cost"] = ratio - 1
                print(f"{'':>10} slip / simclr {key} = {ratio:.3f} (text term +{100 * (ratio - 1):.1f}%)")
            if "simclr" in group and "lightly-simclr" in group:
                ratio = group["lightly-simclr"][key] / group["simclr"][key]
                group["simclr"]["lightly_over_tvdim_time"] = ratio
                print(f"{'':>10} lightly-simclr / simclr {key} = {ratio:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": name, "torch": torch.__version__, "date": datetime.now(timezone.utc).isoformat(),
                               "args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
