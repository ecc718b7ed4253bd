"""Samples/s and peak memory of a full training step (two views + text, backward, optimiser step).

Measures, in one run and on one device, side by side:
  * ``baseline``: a straightforward PyTorch version of the AMDIM step (contiguous memory, fp32, one encoder pass
    per view, AMDIM-reference-style NCE with dense mask tensors, one loss call per (source, target) pair, plain
    Adam);
  * ``amdim`` and ``tvdim``: tvdim's own step (one pass over both views, channels_last, bf16 autocast + TF32 on
    GPU, fused/foreach Adam, mask-free NCE).
Prints a table with the ratios tvdim/amdim (cost of the text branch) and amdim/baseline (speed-up), and writes
JSON. Example: ``python benchmarks/throughput.py --sizes 32,64 --batches 32,64``.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from tvdim.config import load_config
from tvdim.methods import build_method
from tvdim.models.tokenizer import CaptionTokenizer
from tvdim.train.device import autocast, configure_backends, resolve_device, resolve_precision
from tvdim.train.trainer import build_optimizer

WORDS = "a the red green blue small large circle square triangle near top bottom left right of and with".split()


def reference_nce(src: torch.Tensor, tgt: torch.Tensor, tclip: float = 20.0) -> tuple[torch.Tensor, torch.Tensor]:
    """AMDIM-reference-style NCE: dense positive / negative masks over ``[B, B, L]`` (the straightforward way)."""
    b, d = src.shape
    locs = tgt.shape[2]
    raw = torch.mm(src, tgt.permute(1, 0, 2).reshape(d, -1)).reshape(b, b, locs) / math.sqrt(d)
    reg = 0.05 * (raw ** 2).mean()
    scores = tclip * torch.tanh(raw / tclip)
    mask_pos = torch.eye(b, device=src.device).unsqueeze(2).expand(b, b, locs)
    mask_neg = 1.0 - mask_pos
    pos = (mask_pos * scores).sum(dim=1)
    neg = (mask_neg * scores - tclip * mask_pos).reshape(b, -1)
    neg_max = neg.max(dim=1, keepdim=True)[0]
    neg_sumexp = (mask_neg.reshape(b, -1) * torch.exp(neg - neg_max)).sum(dim=1, keepdim=True)
    lse = torch.log(torch.exp(pos - neg_max) + neg_sumexp)
    return -(pos - neg_max - lse).mean(), reg


def baseline_step(method, batch, opt) -> None:
    enc = method.image_encoder
    o1, o2 = enc(batch["x1"]), enc(batch["x2"])
    loss = 0.0
    for src, tgt in ((o1.r1, o2.r5), (o2.r1, o1.r5), (o1.r1, o2.r7), (o2.r1, o1.r7)):
        lo, reg = reference_nce(src, tgt.flatten(2))
        loss = loss + 0.5 * lo + 0.5 * reg
    for a, b in ((o1.r5, o2.r5), (o2.r5, o1.r5)):
        idx = torch.randint(25, (a.shape[0],), device=a.device)
        lo, reg = reference_nce(a.flatten(2)[torch.arange(a.shape[0]), :, idx], b.flatten(2))
        loss = loss + 0.5 * lo + 0.5 * reg
    opt.zero_grad()
    loss.backward()
    opt.step()


def make_batch(size: int, n: int, tok: CaptionTokenizer, device: torch.device, channels_last: bool) -> dict:
    g = torch.Generator().manual_seed(0)
    caps = [" ".join(WORDS[j] for j in torch.randint(len(WORDS), (12,), generator=g).tolist()) for _ in range(n)]
    ids, mask = tok(caps)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {"x1": torch.randn(n, 3, size, size, generator=g).to(device, memory_format=fmt),
            "x2": torch.randn(n, 3, size, size, generator=g).to(device, memory_format=fmt),
            "ids": ids.to(device), "mask": mask.to(device), "has_text": torch.ones(n, dtype=torch.bool, device=device),
            "labels": {}}


def time_steps(fn, steps: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return out


def bench(variant: str, size: int, bs: int, args, tok: CaptionTokenizer, device: torch.device) -> dict:
    method = "amdim" if variant == "baseline" else variant
    cfg = load_config(overrides=[f"train.method={method}", f"model.image_size={size}", f"model.ndf={args.ndf}",
                                 f"model.n_rkhs={args.n_rkhs}", f"model.n_depth={args.n_depth}",
                                 f"text.dim={args.text_dim}", "text.layers=2", f"text.max_len={args.max_len}"])
    torch.manual_seed(0)
    m = build_method(cfg, {}, tok.vocab_size)
    ours = variant != "baseline"
    if ours:
        m = m.to(memory_format=torch.channels_last)
    m.to(device).train()
    if ours:
        opt = build_optimizer(m, cfg, device)
    else:
        opt = torch.optim.Adam(m.parameters(), lr=2e-4, foreach=False)
    batch = make_batch(size, bs, tok, device, ours)
    precision = resolve_precision(args.precision, device) if ours else "fp32"

    def step() -> None:
        if not ours:
            return baseline_step(m, batch, opt)
        with autocast(precision, device):
            res = m(batch)
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_steps(step, args.steps, args.warmup, device)
    med = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"variant": variant, "size": size, "batch": bs, "precision": precision, "median_step_s": med,
            "samples_per_s": bs / med, "peak_mem_mb": round(peak, 1), "step_times": times}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="32,64,128")
    p.add_argument("--batches", default="32,64")
    p.add_argument("--variants", default="baseline,amdim,tvdim")
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--n-rkhs", dest="n_rkhs", type=int, default=256)
    p.add_argument("--n-depth", dest="n_depth", type=int, default=1)
    p.add_argument("--text-dim", dest="text_dim", type=int, default=128)
    p.add_argument("--max-len", dest="max_len", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--out", default="benchmarks/out/throughput.json")
    args = p.parse_args()
    device = resolve_device(args.device)
    configure_backends(device)
    tok = CaptionTokenizer.train([" ".join(WORDS)] * 4, 200, args.max_len)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    rows = []
    print(f"device: {name}; torch {torch.__version__}")
    print(f"{'size':>4} {'batch':>5} {'variant':>8} {'prec':>5} {'samples/s':>10} {'peak MB':>8}")
    for size in [int(s) for s in args.sizes.split(",")]:
        for bs in [int(b) for b in args.batches.split(",")]:
            group = {}
            for v in args.variants.split(","):
                r = bench(v, size, bs, args, tok, device)
                group[v] = r
                rows.append(r)
                print(f"{size:>4} {bs:>5} {v:>8} {r['precision']:>5} {r['samples_per_s']:>10.1f} {r['peak_mem_mb']:>8.0f}",
                      flush=True)
            if "amdim" in group and "tvdim" in group:
                ratio = group["tvdim"]["median_step_s"] / group["amdim"]["median_step_s"]
                print(f"{'':>10} tvdim/amdim step time = {ratio:.3f} (text branch +{100 * (ratio - 1):.1f}%)")
                group["tvdim"]["tvdim_over_amdim_time"] = ratio
            if "amdim" in group and "baseline" in group:
                speed = group["baseline"]["median_step_s"] / group["amdim"]["median_step_s"]
                print(f"{'':>10} amdim speed-up over baseline = {speed:.2f}x")
                group["amdim"]["speedup_over_baseline"] = speed
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": name, "torch": torch.__version__, "date": datetime.now(timezone.utc).isoformat(),
                               "args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
