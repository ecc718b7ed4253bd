"""2 gloo processes == 1 process on the same global batch: loss, loss terms and gradients, for every contrastive
method (global negatives gathered with gradients, positives offset by rank, global-batch BatchNorm).

Add a case to :data:`CASES` to cover a new option: every case runs in the same 2-process launch (one start-up).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dist_harness import one_step

from tvdim.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.dist

WORLD = 2
# (method, extra overrides): each is checked against the same step on one process.
CASES: list[tuple[str, list[str]]] = [
    ("amdim", []),
    ("tvdim", []),
    ("tvdim-nce", []),
    ("clip", []),
    ("amdim", ["model.use_bn=true"]),  # BatchNorm statistics over the global batch
    ("tvdim", ["loss.local=true"]),  # global-to-local terms gather token features and masks
    ("tvdim", ["loss.hinge=max"]),
    ("tvdim", ["loss.hinge=logistic"]),
    ("tvdim-nce", ["loss.chunk_size=3"]),
    ("tvdim", ["loss.robust=gmm", "loss.robust_warmup=0"]),  # per-pair weights from the gathered global batch
    ("tvdim-nce", ["loss.robust=small-loss", "loss.robust_warmup=0", "loss.robust_drop=0.25"]),
    ("tvdim", ["loss.robust=storey", "loss.robust_warmup=0"]),  # rank p-values over the gathered captions
    ("clip", ["loss.learn_scale=off"]),  # the fixed temperature (clip's default is CLIP's learnt logit scale)
    ("simclr", []),  # NT-Xent over the gathered projections of both views; BatchNorm in the projection head
    ("slip", []),
    ("siglip", []),  # the sigmoid loss over every (image, gathered caption) pair
    ("tvdim", ["loss.intra_term=simclr", "loss.inter_term=siglip"]),
    ("slip", ["model.backbone=resnet10t"]),  # a timm backbone (its BatchNorm over the global batch)
    ("amdim", ["model.backbone=resnet10t"]),  # AMDIM's terms on the local maps of the last two stages
]
HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Run every case on WORLD gloo processes at once; returns each rank's results."""
    out = tmp_path_factory.mktemp("dist")
    (out / "cases.json").write_text(json.dumps(CASES))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "rank_worker.py"), str(r), str(WORLD), str(port),
                               str(out / "cases.json"), str(out)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(WORLD)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=300)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for r, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {r} failed:\n{log[-3000:]}"
    results = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for res in results:
        res["out"] = out
    return results


def _close(a: torch.Tensor, b: torch.Tensor, scale: float = 0.0) -> bool:
    """Equal up to float32 summation-order noise: 1e-3 relative to ``b``, plus 2e-4 of ``scale`` (the largest
    gradient of the model: a gradient that should be ~0, such as a bias before BatchNorm, is all noise)."""
    return float((a - b).abs().max()) <= 1e-3 * float(b.abs().max()) + 2e-4 * scale


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{m}{'-' + '-'.join(o) if o else ''}" for m, o in CASES])
def test_two_ranks_equal_one_process(ranks, case):
    method, overrides = CASES[case]
    ref = one_step(method, overrides)
    per_rank = [r["cases"][case] for r in ranks]
    loss = torch.stack([r["loss"] for r in per_rank]).mean()  # DDP averages: the global loss is the rank mean
    assert torch.isfinite(ref["loss"]) and _close(loss, ref["loss"]), (float(loss), float(ref["loss"]))
    for name, value in ref["terms"].items():
        mean = torch.stack([r["terms"][name] for r in per_rank]).mean()
        assert _close(mean, value), (name, float(mean), float(value))
    grads = ref["grads"]
    scale = max(float(g.abs().max()) for g in grads.values())
    assert scale > 0
    for r in per_rank:
        assert set(r["grads"]) == set(grads)
        bad = [k for k, g in grads.items() if not _close(r["grads"][k], g, scale)]
        assert not bad, f"{len(bad)} of {len(grads)} gradients differ, e.g. {bad[:3]}"


def test_two_rank_pretrain_writes_one_resumable_checkpoint(ranks):
    """Under a process group, pretrain splits the batch across ranks and rank 0 writes the checkpoint."""
    assert [r["pretrain_step"] for r in ranks] == [2, 2]
    state = load_checkpoint(ranks[0]["out"] / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 2 and state["samples_seen"] == 2 * 4 * WORLD
