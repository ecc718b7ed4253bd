"""Peers, in their own code: lightly's SimCLR, BYOL and VICReg, trained on the same timm backbone, images, batch
size and number of steps as a tvdim row, then saved as a tvdim checkpoint so that ``tvdim evaluate`` scores them
with exactly the probes, splits and metrics of every other row.

Each peer is written as lightly's own examples write it (examples/pytorch/{simclr,byol,vicreg}.py in lightly 1.6):
its projection / prediction heads, its loss, its view transform at our image size, SGD with lr 0.06 and a plain
PyTorch loop (BYOL: momentum encoders updated with lightly's cosine schedule from 0.99 to 1). Only the backbone is
ours to choose: ``timm.create_model(BACKBONE, num_classes=0)``, as in a tvdim run.

    pip install -e ".[peers]"
    python benchmarks/peers.py --peer lightly-simclr --config configs/rsicd.yaml --backbone resnet18 --size 64 \
        --batch 64 --steps 400 --seed 0 --out runs/peers/lightly-simclr-s0
    tvdim evaluate runs/peers/lightly-simclr-s0/checkpoints/last.pt --out runs/peers/lightly-simclr-s0/eval

Not yet here: open_clip's CLIP through its own trainer (issue 21).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from tvdim.config import load_config, to_plain
from tvdim.data.sources import build_source
from tvdim.methods import build_method
from tvdim.train.checkpoint import save_checkpoint

PEERS = ("lightly-simclr", "lightly-byol", "lightly-vicreg")
LR = 0.06  # lightly's examples: torch.optim.SGD(model.parameters(), lr=0.06)


class PeerModel(torch.nn.Module):
    """Backbone + lightly's heads for one peer; ``loss(views)`` is the peer's objective on a list of view batches."""

    def __init__(self, peer: str, backbone: torch.nn.Module, dim: int) -> None:
        super().__init__()
        from lightly.loss import NegativeCosineSimilarity, NTXentLoss, VICRegLoss
        from lightly.models.modules.heads import (BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead,
                                                  VICRegProjectionHead)
        from lightly.models.utils import deactivate_requires_grad

        self.peer, self.backbone = peer, backbone
        if peer == "lightly-simclr":
            self.head = SimCLRProjectionHead(dim, dim, 128)
            self.criterion = NTXentLoss()
        elif peer == "lightly-byol":
            self.head = BYOLProjectionHead(dim, 1024, 256)
            self.predictor = BYOLPredictionHead(256, 1024, 256)
            self.backbone_momentum = copy.deepcopy(backbone)
            self.head_momentum = copy.deepcopy(self.head)
            deactivate_requires_grad(self.backbone_momentum)
            deactivate_requires_grad(self.head_momentum)
            self.criterion = NegativeCosineSimilarity()
        elif peer == "lightly-vicreg":
            self.head = VICRegProjectionHead(input_dim=dim, hidden_dim=2048, output_dim=2048, num_layers=2)
            self.criterion = VICRegLoss()
        else:
            raise ValueError(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")

    def loss(self, x0: torch.Tensor, x1: torch.Tensor, progress: float) -> torch.Tensor:
        if self.peer == "lightly-byol":
            from lightly.models.utils import update_momentum
            from lightly.utils.scheduler import cosine_schedule

            m = cosine_schedule(int(progress * 1000), 1000, 0.99, 1)
            update_momentum(self.backbone, self.backbone_momentum, m=m)
            update_momentum(self.head, self.head_momentum, m=m)
            p0 = self.predictor(self.head(self.backbone(x0)))
            p1 = self.predictor(self.head(self.backbone(x1)))
            with torch.no_grad():
                z0 = self.head_momentum(self.backbone_momentum(x0))
                z1 = self.head_momentum(self.backbone_momentum(x1))
            return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
        z0, z1 = self.head(self.backbone(x0)), self.head(self.backbone(x1))
        return self.criterion(z0, z1)


def view_transform(peer: str, size: int) -> Any:
    """lightly's transform of the peer at our image size (two views per image)."""
    from lightly.transforms import BYOLTransform, SimCLRTransform, VICRegTransform
    from lightly.transforms.byol_transform import BYOLView1Transform, BYOLView2Transform

    if peer == "lightly-simclr":
        return SimCLRTransform(input_size=size)
    if peer == "lightly-byol":
        return BYOLTransform(view_1_transform=BYOLView1Transform(input_size=size),
                             view_2_transform=BYOLView2Transform(input_size=size))
    return VICRegTransform(input_size=size)


def image_stream(source: Any, seed: int):
    """Training images (PIL), reshuffled every epoch; bad samples skipped (the tvdim reader marks them)."""
    from tvdim.data.sample import Sample

    rng = random.Random(seed)
    n = len(source)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for i in order:
            s = source[i]
            if isinstance(s, Sample):
                yield s.image


def train_peer(peer: str, cfg_path: str | None, overrides: list[str], backbone: str, size: int, batch: int,
               steps: int, seed: int, out: Path, log_every: int = 50) -> Path:
    """Train ``peer`` and write ``out/checkpoints/last.pt`` (a tvdim checkpoint holding the peer's backbone)."""
    import timm

    from tvdim.models.timm_backbone import timm_kwargs

    cfg = load_config(cfg_path, overrides + [f"model.backbone={backbone}", f"model.image_size={size}",
                                             "train.method=simclr", f"train.seed={seed}", f"train.out_dir={out}",
                                             f"train.batch_size={batch}", f"train.steps={steps}"])
    torch.manual_seed(seed)
    random.seed(seed)
    body = timm.create_model(backbone, pretrained=False, num_classes=0, **timm_kwargs(backbone, size))
    model = PeerModel(peer, body, body.num_features).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR)
    tf = view_transform(peer, size)
    images = image_stream(build_source(cfg.data, "eval_train", size), seed)
    out.mkdir(parents=True, exist_ok=True)
    t0, log = time.perf_counter(), (out / "metrics.jsonl").open("w")
    for step in range(1, steps + 1):
        views = [tf(next(images)) for _ in range(batch)]
        x0, x1 = torch.stack([v[0] for v in views]), torch.stack([v[1] for v in views])
        loss = model.loss(x0, x1, (step - 1) / max(steps, 1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            raise SystemExit(f"{peer}: non-finite loss at step {step}")
        if step % log_every == 0 or step == steps:
            rec = {"step": step, "loss": loss.item(), "seconds": round(time.perf_counter() - t0, 1)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
    log.close()
    method = build_method(cfg)
    method.image_encoder.body.load_state_dict(body.state_dict())
    state = {"config": to_plain(cfg), "method": cfg.train.method, "model": method.state_dict(), "step": steps,
             "tokenizer": None, "tasks": {}, "peer": {"name": peer, "lr": LR, "library": "lightly"}}
    return save_checkpoint(out / "checkpoints" / "last.pt", state)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", required=True, choices=PEERS)
    ap.add_argument("--config", default=None, help="a tvdim config file naming the data (data.*)")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*", help="section.key=value (data.* of the tvdim config)")
    args = ap.parse_args(argv)
    try:
        import lightly  # noqa: F401
    except ImportError:
        sys.exit('peers: lightly is not installed (pip install -e ".[peers]")')
    path = train_peer(args.peer, args.config, args.overrides, args.backbone, args.size, args.batch, args.steps,
                      args.seed, Path(args.out))
    print(f"wrote {path} (evaluate with: tvdim evaluate {path})")


if __name__ == "__main__":
    main()
