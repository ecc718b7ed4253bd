"""Samples/s, MFU and peak memory of a full training step (two views + text, backward, optimiser step).

Measures, in one run and on one device, side by side:
  * ``baseline``: a straightforward PyTorch version of the AMDIM step (contiguous memory, fp32, one encoder pass
    per view, AMDIM-reference-style NCE with dense mask tensors, one loss call per (source, target) pair, plain
    Adam);
  * ``amdim`` and ``tvdim``: tvdim's own step (one pass over both views, channels_last, bf16 autocast + TF32 on
    GPU, fused/foreach Adam, mask-free NCE);
  * ``amdim-ref`` and ``amdim-ref-tuned``: the original AMDIM code (github.com/Philip-Bachman/amdim-public, MIT),
    imported from a local checkout given with ``--amdim-ref PATH`` (never copied into this project; without the
    option these rows are skipped with a note). Its ``Model`` (encoder, ``LossMultiNCE``, online classifiers) and
    the step of its ``task_self_supervised._train`` (NCE terms + logit penalty + classifier cross-entropy on random
    labels, Adam with its betas / weight decay, ``model.init_weights(1.0)`` as in its ``train.py``), on synthetic
    inputs already on the device. ``amdim-ref`` runs as shipped: fp32, contiguous, PyTorch's default backend flags
    (its code sets none). ``amdim-ref-tuned`` is the same code with bf16 autocast where the device supports it
    (``--precision``), channels_last model and inputs, and the backend flags of our rows (TF32, cudnn.benchmark):
    the knobs anyone can turn without touching the code, so ``amdim`` over ``amdim-ref-tuned`` is what tvdim's
    implementation itself gains.

    Shims (monkeypatches, applied only at import / construction / inside the reference's step; its files are not
    edited):
      1. ``mixed_precision.py`` imports ``apex.fp16_utils`` (NVIDIA apex, unmaintained): a stub ``apex`` module
         stands in during the import only; mixed precision stays off, so apex is never used.
      2. uint8 masks, accepted by PyTorch 1.x, are errors now: ``masked_fill_`` in ``FakeRKHSConvNet.__init__``
         gets its uint8 mask cast to bool during construction, and ``LossMultiNCE.masks_r5`` is cast to bool once
         after construction (used by ``masked_select`` in each step).
      3. One device: ``torch.cuda.device_count`` reads 1 during construction and each step, so its
         ``nn.DataParallel`` wrappers and multi-GPU hacks stay on one GPU as our rows do; on a non-CUDA device
         ``Tensor.cuda`` (``torch.eye(n).cuda()`` in ``LossMultiNCE.forward``) moves to that device instead.

FLOPs of one step (forward + backward; the optimiser step counts no matmul/conv) are counted once per (variant,
config) with ``torch.utils.flop_counter.FlopCounterMode``; MFU = FLOPs / median step time / peak, the peak being
``--peak-tflops`` or, by default, dense bf16 for an H100 / H200 (empty elsewhere). Prints a table with the ratios
tvdim/amdim (cost of the text branch), amdim/baseline and amdim/amdim-ref(-tuned) (speed-ups), and writes JSON.
Examples: ``python benchmarks/throughput.py --sizes 32,64 --batches 32,64``;
``python benchmarks/throughput.py --configs 32:128:1024:3:256,128:192:1536:8:128 --amdim-ref ../amdim-public``.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import json
import math
import platform
import resource
import statistics
import sys
import time
import types
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

from tvdim.config import load_config
from tvdim.methods import build_method
from tvdim.models.tokenizer import CaptionTokenizer
from tvdim.train.device import autocast, configure_backends, resolve_device, resolve_precision
from tvdim.train.trainer import build_optimizer

WORDS = "a the red green blue small large circle square triangle near top bottom left right of and with".split()
OURS = ("amdim", "tvdim")
REF = ("amdim-ref", "amdim-ref-tuned")
VARIANTS = ("baseline",) + OURS + REF
REF_SIZES = (32, 64, 128)
REF_MODULES = ("model", "costs", "utils", "mixed_precision", "apex", "apex.fp16_utils")


class BenchConfig(NamedTuple):
    """One measured configuration: image size (px), encoder width / embedding size / depth, batch size."""
    size: int
    ndf: int
    n_rkhs: int
    n_depth: int
    batch: int

    def label(self) -> str:
        return f"{self.size}px ndf={self.ndf} n_rkhs={self.n_rkhs} depth={self.n_depth} batch={self.batch}"


def parse_configs(text: str) -> list[BenchConfig]:
    """``"px:ndf:n_rkhs:depth:batch,..."`` -> configs, e.g. ``"32:128:1024:3:256"``; ValueError when malformed."""
    out = []
    for item in text.split(","):
        parts = item.strip().split(":")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 5 or min(values) < 1:
            raise ValueError(f"config {item.strip()!r}: expected px:ndf:n_rkhs:depth:batch, five positive integers")
        out.append(BenchConfig(*values))
    return out


def grid_configs(sizes: str, batches: str, ndf: int, n_rkhs: int, n_depth: int) -> list[BenchConfig]:
    return [BenchConfig(int(s), ndf, n_rkhs, n_depth, int(b)) for s in sizes.split(",") for b in batches.split(",")]


def default_peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak (TFLOP/s, no sparsity) of the known accelerators; None (no MFU) for anything else."""
    name = device_name.upper()
    if "H100" in name and "PCIE" in name:
        return 756.0
    if "H100" in name or "H200" in name:
        return 989.0
    return None


def mfu(flops: float, step_s: float, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over the peak, as a fraction; None without a peak."""
    if peak_tflops is None or not flops or step_s <= 0:
        return None
    return flops / step_s / (peak_tflops * 1e12)


def count_flops(fn) -> int:
    """FLOPs (2 per multiply-add) of one call of ``fn``, as counted by PyTorch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


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


# --- the original AMDIM code, from a local checkout ---------------------------------------------------------------

def load_amdim_ref(path: str) -> types.SimpleNamespace:
    """Import ``model.py`` / ``costs.py`` of an amdim-public checkout (shim 1); its module names are generic
    (``model``, ``utils``, ...), so they live in ``sys.modules`` only during the import."""
    root = Path(path).expanduser().resolve()
    if not (root / "model.py").is_file() or not (root / "costs.py").is_file():
        raise FileNotFoundError(f"no model.py / costs.py in {root}")
    saved = {n: sys.modules.pop(n) for n in REF_MODULES if n in sys.modules}
    apex, fp16 = types.ModuleType("apex"), types.ModuleType("apex.fp16_utils")
    fp16.FP16_Optimizer = type("FP16_Optimizer", (), {})  # shim 1: never constructed (mixed precision stays off)
    apex.fp16_utils = fp16
    sys.modules.update({"apex": apex, "apex.fp16_utils": fp16})
    sys.path.insert(0, str(root))
    try:
        model, costs = importlib.import_module("model"), importlib.import_module("costs")
        if Path(model.__file__).resolve().parent != root:
            raise ImportError(f"'model' resolved to {model.__file__}")
    finally:
        sys.path.remove(str(root))
        for n in REF_MODULES:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
    return types.SimpleNamespace(Model=model.Model, loss_xent=costs.loss_xent, root=str(root))


@contextlib.contextmanager
def ref_runtime(device: torch.device):
    """Shim 3: one device for the reference's DataParallel wrappers and ``.cuda()`` calls."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(torch.cuda, "device_count", lambda: 1))
        if device.type != "cuda":
            stack.enter_context(mock.patch.object(torch.Tensor, "cuda", lambda self, *a, **k: self.to(device)))
        yield


def build_ref_model(ref: types.SimpleNamespace, cfg: BenchConfig, device: torch.device) -> torch.nn.Module:
    orig_fill = torch.Tensor.masked_fill_

    def masked_fill_(self, mask, value):  # shim 2 (construction only)
        return orig_fill(self, mask.bool() if mask.dtype == torch.uint8 else mask, value)

    with ref_runtime(device), mock.patch.object(torch.Tensor, "masked_fill_", masked_fill_), \
            contextlib.redirect_stdout(io.StringIO()):  # it prints "Using a NxN encoder"
        m = ref.Model(ndf=cfg.ndf, n_classes=10, n_rkhs=cfg.n_rkhs, tclip=20.0, n_depth=cfg.n_depth,
                      encoder_size=cfg.size, use_bn=False)  # train.py's defaults: tclip 20, use_bn 0
    m.init_weights(init_scale=1.0)
    loss = m.g2l_loss
    loss.masks_r5 = torch.nn.Parameter(loss.masks_r5.detach().bool(), requires_grad=False)  # shim 2
    return m


# --- timing -------------------------------------------------------------------------------------------------------

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


def backend_flags() -> dict:
    return {"matmul_tf32": torch.backends.cuda.matmul.allow_tf32, "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark}


def set_backend_flags(flags: dict) -> None:
    torch.backends.cuda.matmul.allow_tf32 = flags["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn_tf32"]
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]


def ours_step_fn(variant: str, c: BenchConfig, args, tok: CaptionTokenizer, device: torch.device):
    method = "amdim" if variant == "baseline" else variant
    cfg = load_config(overrides=[f"train.method={method}", f"model.image_size={c.size}", f"model.ndf={c.ndf}",
                                 f"model.n_rkhs={c.n_rkhs}", f"model.n_depth={c.n_depth}",
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
    batch = make_batch(c.size, c.batch, tok, device, ours)
    precision = resolve_precision(args.precision, device) if ours else "fp32"

    def step() -> None:
        if not ours:
            return baseline_step(m, batch, opt)
        with autocast(precision, device):
            res = m(batch)
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        opt.step()

    return step, precision


def ref_step_fn(variant: str, c: BenchConfig, args, ref: types.SimpleNamespace, device: torch.device):
    tuned = variant == "amdim-ref-tuned"
    torch.manual_seed(0)
    m = build_ref_model(ref, c, device)
    fmt = torch.channels_last if tuned else torch.contiguous_format
    if tuned:
        m = m.to(memory_format=fmt)
    m.to(device).train()
    # task_self_supervised.train_self_supervised: one group per module, lr 2e-4 (train.py's default)
    opt = torch.optim.Adam([{"params": mod.parameters(), "lr": 2e-4} for mod in m.info_modules + m.class_modules],
                           betas=(0.8, 0.999), weight_decay=1e-5, eps=1e-8)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(c.batch, 3, c.size, c.size, generator=g).to(device, memory_format=fmt)
    x2 = torch.randn(c.batch, 3, c.size, c.size, generator=g).to(device, memory_format=fmt)
    labels = torch.randint(10, (c.batch,), generator=g).repeat(2).to(device)  # torch.cat([labels, labels])
    precision = resolve_precision(args.precision, device) if tuned else "fp32"

    def step() -> None:  # task_self_supervised._train, one update (LR warm-up and stats left out)
        with ref_runtime(device):
            with autocast(precision, device):
                res = m(x1=x1, x2=x2, class_only=False)
                mlp, lin = res["class"]
                loss_inf = res["g2l_1t5"] + res["g2l_1t7"] + res["g2l_5t5"] + res["lgt_reg"]
                loss_cls = ref.loss_xent(mlp, labels) + ref.loss_xent(lin, labels)
            opt.zero_grad()
            (loss_inf + loss_cls).backward()
            opt.step()

    return step, precision


def bench(variant: str, c: BenchConfig, args, tok, ref, device: torch.device, flags: dict, peak_tflops) -> dict:
    gc.collect()  # the previous variant's model and optimiser state
    if device.type == "cuda":
        torch.cuda.empty_cache()
    set_backend_flags(flags)
    if variant in REF:
        step, precision = ref_step_fn(variant, c, args, ref, device)
    else:
        step, precision = ours_step_fn(variant, c, args, tok, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_steps(step, args.steps, args.warmup, device)
    med = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    flops = count_flops(step)
    u = mfu(flops, med, peak_tflops)
    return {"variant": variant, **c._asdict(), "precision": precision, "backends": flags, "median_step_s": med,
            "samples_per_s": c.batch / med, "peak_mem_mb": round(peak, 1), "flops_per_step": flops,
            "achieved_tflops": flops / med / 1e12, "mfu": u, "step_times": times}


def fmt_row(r: dict) -> str:
    mfu_s = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
    return (f"{r['variant']:>15} {r['precision']:>5} {r['samples_per_s']:>10.1f} {1000 * r['median_step_s']:>9.1f} "
            f"{r['flops_per_step'] / 1e9:>9.1f} {r['achieved_tflops']:>7.2f} {mfu_s:>6} {r['peak_mem_mb']:>8.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="32,64,128")
    p.add_argument("--batches", default="32,64")
    p.add_argument("--configs", default=None,
                   help="explicit configs px:ndf:n_rkhs:depth:batch,... (replace --sizes/--batches/--ndf/...)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--amdim-ref", dest="amdim_ref", default=None,
                   help="path of a local amdim-public checkout; without it the amdim-ref* rows are skipped")
    p.add_argument("--peak-tflops", dest="peak_tflops", type=float, default=None,
                   help="peak TFLOP/s for MFU (default: dense bf16 of an H100/H200; none, so no MFU, elsewhere)")
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
    try:
        configs = (parse_configs(args.configs) if args.configs
                   else grid_configs(args.sizes, args.batches, args.ndf, args.n_rkhs, args.n_depth))
    except ValueError as e:
        p.error(str(e))
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; known: {','.join(VARIANTS)}")
    ref = None
    if any(v in REF for v in variants):
        if args.amdim_ref is None:
            print("note: amdim-ref / amdim-ref-tuned skipped (give --amdim-ref PATH, a checkout of "
                  "github.com/Philip-Bachman/amdim-public)")
            variants = [v for v in variants if v not in REF]
        else:
            try:
                ref = load_amdim_ref(args.amdim_ref)
            except Exception as e:  # noqa: BLE001 - any import failure: one line naming the path
                sys.exit(f"error: cannot import the AMDIM reference from --amdim-ref {args.amdim_ref}: "
                         f"{type(e).__name__}: {e}".replace("\n", " "))

    device = resolve_device(args.device)
    default_flags = backend_flags()  # PyTorch's defaults: what the reference runs with as shipped
    configure_backends(device)
    our_flags = backend_flags()
    tok = CaptionTokenizer.train([" ".join(WORDS)] * 4, 200, args.max_len)
    cpu = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    peak_tflops = args.peak_tflops if args.peak_tflops is not None else default_peak_tflops(name)
    rows = []
    print(f"device: {name}; torch {torch.__version__}; MFU peak: "
          + (f"{peak_tflops:g} TFLOP/s" if peak_tflops else "none (give --peak-tflops)"))
    head = (f"{'variant':>15} {'prec':>5} {'samples/s':>10} {'step ms':>9} {'GFLOP':>9} {'TFLOP/s':>7} {'MFU':>6} "
            f"{'peak MB':>8}")
    for c in configs:
        print(f"-- {c.label()}\n{head}")
        group = {}
        for v in variants:
            if v in REF and c.size not in REF_SIZES:
                print(f"{v:>15} skipped: the reference encoder takes {REF_SIZES} px")
                continue
            r = bench(v, c, args, tok, ref, device, default_flags if v == "amdim-ref" else our_flags, peak_tflops)
            group[v] = r
            rows.append(r)
            print(fmt_row(r), flush=True)
        if "amdim" in group and "tvdim" in group:
            ratio = group["tvdim"]["median_step_s"] / group["amdim"]["median_step_s"]
            print(f"{'':>10} tvdim/amdim step time = {ratio:.3f} (text branch +{100 * (ratio - 1):.1f}%)")
            group["tvdim"]["tvdim_over_amdim_time"] = ratio
        for other, key in (("baseline", "speedup_over_baseline"), ("amdim-ref", "speedup_over_ref"),
                           ("amdim-ref-tuned", "speedup_over_ref_tuned")):
            if "amdim" in group and other in group:
                speed = group[other]["median_step_s"] / group["amdim"]["median_step_s"]
                print(f"{'':>10} amdim speed-up over {other} = {speed:.2f}x")
                group["amdim"][key] = speed
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": name, "torch": torch.__version__, "date": datetime.now(timezone.utc).isoformat(),
                               "peak_tflops": peak_tflops, "amdim_ref": ref.root if ref else None,
                               "args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
