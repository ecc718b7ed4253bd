"""Peers, in their own code: lightly's SimCLR, BYOL and VICReg, trained on the same timm backbone, images, batch
size and number of steps as a tvdim row, then saved as a tvdim checkpoint so that ``tvdim evaluate`` scores them
with exactly the probes, splits and metrics of every other row.

Each peer is written as lightly's own examples write it (examples/pytorch/{simclr,byol,vicreg}.py in lightly 1.6):
its projection / prediction heads, its loss, its view transform at our image size, SGD with lr 0.06 and a plain
PyTorch loop (BYOL: momentum encoders updated with lightly's cosine schedule from 0.99 to 1). Only the backbone is
ours to choose: ``timm.create_model(BACKBONE, num_classes=0)``, as in a tvdim run. VICReg diverges with the example's
SGD (non-finite loss within 10 steps here), so ``--optimizer lars`` gives it lightly's own benchmark recipe instead
(benchmarks/imagenet/resnet50/vicreg.py): LARS, lr 0.2 x batch / 256, momentum 0.9, weight decay 1e-6 off norms and
biases, cosine decay to 1 % after a warm-up of 10 % of the steps.

    pip install -e ".[peers]"
    python benchmarks/peers.py --peer lightly-simclr --config configs/rsicd.yaml --backbone resnet18 --size 64 \
        --batch 64 --steps 400 --seed 0 --out runs/peers/lightly-simclr-s0
    tvdim evaluate runs/peers/lightly-simclr-s0/checkpoints/last.pt --out runs/peers/lightly-simclr-s0/eval

To find out why lightly's SimCLR and tvdim's ``simclr`` differ (issue 21, item 4), each part of tvdim's recipe can be
moved into lightly's code on its own: ``--temperature 0.1``, ``--optimizer tvdim``, ``--views tvdim`` (tvdim's AMDIM
views), ``--head tvdim`` (tvdim's projection head) and ``--forward joint`` (both views as one backbone batch). These
are ablations, not the peer; the study's ``peers-ablation`` experiment runs them.

open_clip's CLIP is trained by open_clip's own trainer (``python -m open_clip_train.main``, on CPU here) on the same
WebDataset shards (their ``.jpg`` / ``.txt``), with a model config whose image tower is the same timm backbone and
whose text tower has tvdim's text size (``text.dim`` / ``text.layers`` / ``text.heads`` / ``text.max_len``; open_clip
keeps its own BPE tokenizer), same batch and steps (``--train-num-samples x --epochs = steps * batch``, sampled with
replacement; one epoch, or one per ``ckpt_every`` steps so that a cut-off run resumes), warm-up as the tvdim rows,
otherwise open_clip's defaults (AdamW lr 5e-4, wd 0.2). Images are normalised with tvdim's mean / std so that
``tvdim evaluate``'s one evaluation transform feeds the trunk what it was trained on. Its image trunk is saved as a
tvdim checkpoint (probes); retrieval and zero-shot go through open_clip's own towers (:func:`open_clip_eval`).

    python benchmarks/peers.py --peer open_clip-clip --config configs/rsicd.yaml --shards 'DIR/rsicd-train-{000000..000008}.tar' \
        --backbone resnet18 --size 64 --batch 64 --steps 400 --seed 0 --out runs/peers/open_clip-s0
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
from tvdim.data.sample import Sample
from tvdim.data.sources import build_source
from tvdim.errors import CheckpointError
from tvdim.methods import build_method
from tvdim.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

LIGHTLY = ("lightly-simclr", "lightly-byol", "lightly-vicreg")
OPEN_CLIP = "open_clip-clip"
PEERS = (*LIGHTLY, OPEN_CLIP)
LR = 0.06  # lightly's examples: torch.optim.SGD(model.parameters(), lr=0.06)
LARS_LR, LARS_WARMUP, LARS_END = 0.2, 0.1, 0.01  # lightly's VICReg benchmark: 0.2 x B / 256, 10 % warm-up, to 1 %
OPTIMIZERS = ("lightly", "lars", "tvdim")
VIEWS = ("lightly", "tvdim")  # the peer's own view transform, or tvdim's AMDIM views (an ablation)
HEADS = ("lightly", "tvdim")  # lightly-simclr: lightly's SimCLRProjectionHead, or tvdim's projection head
FORWARDS = ("per-view", "joint")  # each view through the backbone as its own batch (lightly), or both as one (tvdim)
DEFAULTS = {"views": "lightly", "head": "lightly", "forward": "per-view"}  # lightly's examples


class PeerModel(torch.nn.Module):
    """Backbone + lightly's heads for one peer; ``loss(x0, x1, progress)`` is the peer's objective on two view batches.

    Two departures exist only to explain lightly-simclr's gap to tvdim's simclr (issue 21, item 4):
    ``head="tvdim"`` puts tvdim's projection head (Linear with bias -> BN -> ReLU -> Linear) in place of lightly's
    ``SimCLRProjectionHead`` (no biases, and a BatchNorm on the output), and ``forward="joint"`` passes both views
    through the backbone as one batch of 2B, as tvdim does, so that BatchNorm's batch statistics span both views
    (lightly's examples pass each view as its own batch; any peer but BYOL, whose views feed two networks)."""

    def __init__(self, peer: str, backbone: torch.nn.Module, dim: int, temperature: float | None = None,
                 head: str = "lightly", forward: str = "per-view") -> None:
        super().__init__()
        from lightly.loss import NegativeCosineSimilarity, NTXentLoss, VICRegLoss
        from lightly.models.modules.heads import (BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead,
                                                  VICRegProjectionHead)
        from lightly.models.utils import deactivate_requires_grad

        self.peer, self.backbone = peer, backbone
        if head not in HEADS or (head != "lightly" and peer != "lightly-simclr"):
            raise ValueError(f"head {head!r} is not one for {peer}; lightly-simclr takes {', '.join(HEADS)}")
        if forward not in FORWARDS or (forward != "per-view" and peer == "lightly-byol"):
            raise ValueError(f"forward {forward!r} is not one for {peer}; choose from {', '.join(FORWARDS)} "
                             "(BYOL: per-view)")
        self.joint = forward == "joint"
        if peer == "lightly-simclr":
            from tvdim.methods.contrastive import projection_head

            self.head = projection_head(dim, dim, 128) if head == "tvdim" else SimCLRProjectionHead(dim, dim, 128)
            self.criterion = NTXentLoss() if temperature is None else NTXentLoss(temperature=temperature)
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
            raise ValueError(f"unknown lightly peer {peer!r}; known: {', '.join(LIGHTLY)}")

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
        if self.joint:  # one batch of 2B through the backbone; the head still sees each view as its own batch
            f0, f1 = self.backbone(torch.cat([x0, x1])).split(x0.shape[0])
        else:
            f0, f1 = self.backbone(x0), self.backbone(x1)
        return self.criterion(self.head(f0), self.head(f1))


def view_transform(peer: str, size: int, views: str = "lightly") -> Any:
    """lightly's transform of the peer at our image size (two views per image), or with ``views="tvdim"`` tvdim's
    own two AMDIM views (:class:`tvdim.data.transforms.TwoViews`: shared flip, random resized crop of 30-100 %,
    colour jitter, grayscale), which every tvdim row trains on."""
    if views == "tvdim":
        from tvdim.data.transforms import TwoViews

        return TwoViews(size)
    if views != "lightly":
        raise ValueError(f"unknown views {views!r}; choose from {', '.join(VIEWS)}")
    from lightly.transforms import BYOLTransform, SimCLRTransform, VICRegTransform
    from lightly.transforms.byol_transform import BYOLView1Transform, BYOLView2Transform

    if peer == "lightly-simclr":
        return SimCLRTransform(input_size=size)
    if peer == "lightly-byol":
        return BYOLTransform(view_1_transform=BYOLView1Transform(input_size=size),
                             view_2_transform=BYOLView2Transform(input_size=size))
    return VICRegTransform(input_size=size)


class ImageStream:
    """Training images (PIL) in a fresh permutation every epoch (``random.Random(seed)``); bad samples are skipped
    (the tvdim reader marks them). ``position`` counts the indices drawn, so ``ImageStream(source, seed, position)``
    continues a cut-off run with exactly the images it would have drawn next, without decoding those before."""

    def __init__(self, source: Any, seed: int, position: int = 0) -> None:
        self.source, self.position, self.n = source, position, len(source)
        if self.n == 0:
            raise SystemExit("peers: the training data has no samples")
        self._rng = random.Random(seed)
        self._epoch = -1
        self._order: list[int] = []
        self._advance_to(position // self.n)

    def _advance_to(self, epoch: int) -> None:
        while self._epoch < epoch:
            self._order = list(range(self.n))
            self._rng.shuffle(self._order)
            self._epoch += 1

    def __iter__(self) -> "ImageStream":
        return self

    def __next__(self) -> Any:
        for _ in range(self.n):  # a whole epoch of bad samples in a row: the data is unusable
            epoch, k = divmod(self.position, self.n)
            self._advance_to(epoch)
            self.position += 1
            s = self.source[self._order[k]]
            if isinstance(s, Sample):
                return s.image
        raise SystemExit(f"peers: {self.n} training samples in a row could not be read")


def _peer_state(path: Path, signature: dict[str, Any]) -> dict[str, Any] | None:
    """The resume state of a cut-off run with the same ``signature`` at ``path``, or None (then start afresh)."""
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path, require=("signature", "step", "position", "rng"))
    except CheckpointError as exc:  # a damaged file: the run starts afresh, saying why
        print(f"peers: {exc}; starting afresh", flush=True)
        return None
    if state.get("signature") != signature:
        print(f"peers: {path} is another run's (other settings); starting afresh", flush=True)
        return None
    return state


def train_peer(peer: str, cfg_path: str | None, overrides: list[str], backbone: str, size: int, batch: int,
               steps: int, seed: int, out: Path, log_every: int = 50, device: str = "cpu",
               temperature: float | None = None, optimizer: str = "lightly", ckpt_every: int = 400,
               views: str = "lightly", head: str = "lightly", forward: str = "per-view") -> Path:
    """Train ``peer`` on ``device`` and write ``out/checkpoints/last.pt`` (a tvdim checkpoint holding the peer's
    backbone).

    The defaults are lightly's example. Five departures exist only to explain a gap to tvdim's own recipe (issue 21,
    item 4): ``temperature`` (lightly-simclr's NT-Xent temperature; the example's is 0.5), ``optimizer="tvdim"``
    (tvdim's Adam, lr schedule and warm-up from the config's ``optim`` section instead of SGD lr 0.06),
    ``views="tvdim"`` (tvdim's AMDIM views instead of lightly's transform, see :func:`view_transform`),
    ``head="tvdim"`` (tvdim's projection head) and ``forward="joint"`` (both views as one backbone batch; see
    :class:`PeerModel`).
    ``optimizer="lars"`` is lightly's benchmark recipe, for a peer whose example settings diverge (VICReg).

    Every ``ckpt_every`` steps the whole training state (model, optimiser, schedule, data position, random states)
    goes to ``out/checkpoints/peer_state.pt``; the same call after a cut continues from it and ends with the weights
    an uncut run would have (python, numpy and torch random states are all seeded and saved)."""
    import numpy as np
    import timm

    from tvdim.models.timm_backbone import timm_kwargs

    cfg = load_config(cfg_path, overrides + [f"model.backbone={backbone}", f"model.image_size={size}",
                                             "train.method=simclr", f"train.seed={seed}", f"train.out_dir={out}",
                                             f"train.batch_size={batch}", f"train.steps={steps}"])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)  # lightly's blur and solarisation draw from numpy's global generator
    body = timm.create_model(backbone, pretrained=False, num_classes=0, **timm_kwargs(backbone, size))
    try:  # a departure the peer does not have: one line, before any training
        model = PeerModel(peer, body, body.num_features, temperature, head, forward).train().to(device)
        tf = view_transform(peer, size, views)
    except ValueError as exc:
        raise SystemExit(f"peers: {exc}") from None
    opt, sched = peer_optimizer(optimizer, model, cfg.optim, steps, batch)
    signature = {"peer": peer, "overrides": overrides, "backbone": backbone, "size": size, "batch": batch,
                 "steps": steps, "seed": seed, "temperature": temperature, "optimizer": optimizer}
    departures = {"views": views, "head": head, "forward": forward}
    signature |= {k: v for k, v in departures.items() if v != DEFAULTS[k]}  # older cut-off runs keep theirs
    state_path = out / "checkpoints" / "peer_state.pt"
    state = _peer_state(state_path, signature)
    first, position, metrics = 1, 0, out / "metrics.jsonl"
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        first, position = state["step"] + 1, state["position"]
        kept = [ln for ln in metrics.read_text().splitlines() if json.loads(ln)["step"] <= state["step"]] \
            if metrics.is_file() else []
        metrics.write_text("".join(ln + "\n" for ln in kept))  # lines after the checkpoint are redone
        print(f"peers: resuming {out} from step {state['step']}", flush=True)
    images = ImageStream(build_source(cfg.data, "eval_train", size), seed, position)
    out.mkdir(parents=True, exist_ok=True)
    t0, log = time.perf_counter(), metrics.open("a" if state is not None else "w")
    for step in range(first, steps + 1):
        pairs = [tf(next(images)) for _ in range(batch)]
        x0, x1 = torch.stack([v[0] for v in pairs]).to(device), torch.stack([v[1] for v in pairs]).to(device)
        loss = model.loss(x0, x1, (step - 1) / max(steps, 1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr = opt.param_groups[0]["lr"]  # the rate this step used
        sched.step()
        if not math.isfinite(loss.item()):
            raise SystemExit(f"{peer}: non-finite loss at step {step}")
        if step % log_every == 0 or step == steps:
            rec = {"step": step, "loss": loss.item(), "lr": lr, "seconds": round(time.perf_counter() - t0, 1)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if step % ckpt_every == 0 and step < steps:
            save_checkpoint(state_path, {
                "signature": signature, "step": step, "position": images.position, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_state()})
    log.close()
    body_state = {k: v.cpu() for k, v in body.state_dict().items()}
    base_lr = {"lightly": LR, "lars": LARS_LR * batch / 256}.get(optimizer, cfg.optim.lr)
    recipe = {"optimizer": optimizer, "lr": base_lr, "temperature": temperature, **departures}
    return save_as_tvdim(cfg, body_state, steps, {"name": peer, "library": "lightly", **recipe}, out)


def peer_optimizer(name: str, model: torch.nn.Module, optim: Any, steps: int, batch: int) -> tuple[Any, Any]:
    """(optimizer, per-step lr scheduler) over ``model``'s trainable parameters:

    - ``lightly``: the examples' SGD at lr 0.06, constant;
    - ``lars``: lightly's VICReg benchmark, LARS at 0.2 x ``batch`` / 256, momentum 0.9, weight decay 1e-6 except on
      norm layers and biases, cosine from the end of a 10 % warm-up down to 1 % of the rate;
    - ``tvdim``: tvdim's Adam (``optim.lr`` / betas / eps / weight decay) with its warm-up and late step decay."""
    from tvdim.train.schedule import build_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    if name == "lars":
        from lightly.models.utils import get_weight_decay_parameters
        from lightly.utils.lars import LARS
        from lightly.utils.scheduler import CosineWarmupScheduler

        decay, no_decay = (
            [p for p in group if p.requires_grad] for group in get_weight_decay_parameters([model]))
        opt = LARS([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=LARS_LR * batch / 256,
                   momentum=0.9, weight_decay=1e-6)
        return opt, CosineWarmupScheduler(opt, warmup_epochs=round(LARS_WARMUP * steps), max_epochs=steps,
                                          end_value=LARS_END)
    if name == "lightly":
        opt = torch.optim.SGD(params, lr=LR)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    if name == "tvdim":
        opt = torch.optim.Adam(params, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps,
                               weight_decay=optim.weight_decay)
        return opt, build_scheduler(opt, steps, optim.warmup_steps, optim.decay_at, optim.decay_factor)
    raise SystemExit(f"peers: unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def save_as_tvdim(cfg: Any, body_state: dict[str, torch.Tensor], steps: int, peer: dict[str, Any], out: Path) -> Path:
    """A tvdim checkpoint (method ``simclr`` of ``cfg``) whose image backbone holds ``body_state``: ``tvdim
    evaluate`` then scores the peer's backbone with the probes of every other row."""
    method = build_method(cfg)
    method.image_encoder.body.load_state_dict(body_state)
    state = {"config": to_plain(cfg), "method": cfg.train.method, "model": method.state_dict(), "step": steps,
             "tokenizer": None, "tasks": {}, "peer": peer}
    return save_checkpoint(out / "checkpoints" / "last.pt", state)


def open_clip_config(backbone: str, size: int, text: Any, embed_dim: int) -> dict[str, Any]:
    """open_clip's model config (``open_clip_config.json`` of a ``local-dir:`` model): the timm ``backbone`` as the
    image tower with timm's own pooling (as ``timm.create_model(name, num_classes=0)`` in tvdim), a text Transformer
    of tvdim's text size, and tvdim's normalisation."""
    from tvdim.data.transforms import MEAN, STD

    return {"model_cfg": {"embed_dim": embed_dim,
                          "vision_cfg": {"timm_model_name": backbone, "timm_model_pretrained": False, "timm_pool": "",
                                         "timm_proj": "linear", "image_size": size},
                          "text_cfg": {"context_length": text.max_len, "vocab_size": 49408, "width": text.dim,
                                       "heads": text.heads, "layers": text.layers}},
            "preprocess_cfg": {"mean": list(MEAN), "std": list(STD)}}


def open_clip_argv(shards: str, model_dir: Path, logs: Path, batch: int, steps: int, seed: int, warmup: int,
                   workers: int, device: str = "cpu", epochs: int = 1) -> list[str]:
    """Arguments of ``python -m open_clip_train.main`` for ``steps`` steps of ``batch`` on ``device``, split into
    ``epochs`` equal epochs (``steps`` must divide): open_clip saves a checkpoint after each (keeping only the
    newest) and ``--resume latest`` continues from it when the same command is run again."""
    if epochs < 1 or steps % epochs:
        raise ValueError(f"open_clip: {steps} steps do not split into {epochs} equal epochs")
    return ["--train-data", shards, "--dataset-type", "webdataset", "--dataset-resampled",
            "--train-num-samples", str(steps // epochs * batch), "--epochs", str(epochs), "--batch-size", str(batch),
            "--workers", str(workers), "--model", f"local-dir:{model_dir}", "--warmup", str(warmup),
            "--precision", "fp32" if device == "cpu" else "amp_bf16", "--device", device, "--seed", str(seed),
            "--logs", str(logs), "--name", "open_clip", "--save-frequency", "1", "--delete-previous-checkpoint",
            "--resume", "latest", "--log-every-n-steps", "10", "--report-to", ""]


def open_clip_epochs(steps: int, ckpt_every: int) -> int:
    """How many epochs an open_clip run of ``steps`` is split into so that it checkpoints every ``ckpt_every`` steps:
    1 (no checkpoint before the end) when ``ckpt_every`` is 0, not below ``steps`` or does not divide it."""
    return steps // ckpt_every if 0 < ckpt_every < steps and steps % ckpt_every == 0 else 1


def train_open_clip(cfg_path: str | None, overrides: list[str], shards: str, backbone: str, size: int, batch: int,
                    steps: int, seed: int, out: Path, warmup: int = 50, workers: int = 0, device: str = "cpu",
                    ckpt_every: int = 0) -> Path:
    """Train CLIP with open_clip's own trainer (a subprocess) and write ``out/checkpoints/last.pt`` (its image
    trunk as a tvdim checkpoint); open_clip's run (log, checkpoint) stays under ``out/open_clip``.

    With ``ckpt_every`` dividing ``steps``, the run is ``steps / ckpt_every`` epochs of ``ckpt_every`` steps (one
    cosine schedule over all of them, as open_clip schedules by step), and a run cut off part-way continues from its
    last finished epoch with open_clip's own ``--resume latest`` (model, optimiser, step; open_clip keeps no random
    state, so the continued run is not bit-identical to an uncut one). A run left by other arguments starts again."""
    import shutil
    import subprocess

    import timm

    cfg = load_config(cfg_path, overrides + [f"model.backbone={backbone}", f"model.image_size={size}",
                                             "train.method=simclr", f"train.seed={seed}", f"train.out_dir={out}",
                                             f"train.batch_size={batch}", f"train.steps={steps}"])
    dim = timm.create_model(backbone, pretrained=False, num_classes=0).num_features
    model_dir = out / "open_clip_model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "open_clip_config.json").write_text(json.dumps(open_clip_config(backbone, size, cfg.text, dim),
                                                                indent=1))
    epochs = open_clip_epochs(steps, ckpt_every)
    argv = open_clip_argv(shards, model_dir, out, batch, steps, seed, warmup, workers, device, epochs)
    signature = out / "open_clip_argv.json"
    if not signature.exists() or json.loads(signature.read_text()) != argv:  # open_clip would resume a stale run
        shutil.rmtree(out / "open_clip", ignore_errors=True)
        signature.write_text(json.dumps(argv))
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "open_clip_train.main", *argv], capture_output=True, text=True)
    with (out / "open_clip_stdout.log").open("a") as log:  # appended: a continued run keeps the cut one's log
        log.write(done.stdout + done.stderr)
    ckpt = out / "open_clip" / "checkpoints" / f"epoch_{epochs}.pt"
    if done.returncode != 0 or not ckpt.exists():
        raise SystemExit(f"open_clip_train failed (exit {done.returncode}); see {out / 'open_clip_stdout.log'}: "
                         f"{(done.stderr or done.stdout)[-600:]}")
    state = open_clip_state(ckpt)
    trunk = {k[len("visual.trunk."):]: v for k, v in state.items() if k.startswith("visual.trunk.")}
    with (out / "metrics.jsonl").open("w") as log:
        log.write(json.dumps({"step": steps, "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
    return save_as_tvdim(cfg, trunk, steps, {"name": OPEN_CLIP, "library": "open_clip", "argv": argv,
                                             "open_clip_checkpoint": str(ckpt)}, out)


def open_clip_state(ckpt: Path) -> dict[str, torch.Tensor]:
    """The model weights of an open_clip training checkpoint (``module.`` prefixes of DDP removed)."""
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    sd = raw.get("state_dict", raw)
    return {k.removeprefix("module."): v for k, v in sd.items()}


class _OpenClipImage(torch.nn.Module):
    """open_clip's image tower (trunk + projection) as a tvdim image encoder: ``r1`` = its CLIP embedding."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        from tvdim.models.image_encoder import EncoderOutput

        return EncoderOutput(self.model.encode_image(x), None, None)


class _OpenClipText(torch.nn.Module):
    """open_clip's text tower behind tvdim's text-encoder call: ``(ids, mask) -> .sentence``."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(sentence=self.model.encode_text(ids))


def open_clip_eval(run: Path, data: Any, ecfg: Any, size: int) -> dict[str, Any]:
    """Retrieval (every caption of the test images, tvdim's counting) and zero-shot accuracy of a trained
    open_clip run through open_clip's own image and text towers and tokenizer; same test split as ``tvdim
    evaluate``: ``{"retrieval": {...}, "zeroshot": {task: {...}}}``."""
    import open_clip

    from tvdim.data.eval_image import eval_source
    from tvdim.eval.caption_retrieval import caption_retrieval
    from tvdim.eval.evaluate import add_zeroshot
    from tvdim.eval.features import extract_features
    from tvdim.eval.zeroshot import class_names

    name = f"local-dir:{run / 'open_clip_model'}"
    model = open_clip.create_model(name)
    model.load_state_dict(open_clip_state(run / "open_clip" / "checkpoints" / "epoch_1.pt"))
    model.eval()
    tok = open_clip.get_tokenizer(name)
    src = eval_source(data, "test", size)
    te = extract_features(_OpenClipImage(model), src, size, ecfg.probe_batch, "cpu", 0, data.max_bad_fraction, "test")
    text = (_OpenClipText(model), lambda caps: (tok(caps), torch.ones(len(caps))))  # open_clip masks by itself
    tasks: dict[str, dict[str, Any]] = {}
    if ecfg.zeroshot_templates:
        add_zeroshot(tasks, text, te, class_names(src, data, "test"), ecfg.zeroshot_templates)
    return {"retrieval": caption_retrieval(*text, te.feats, te.all_captions, ecfg.retrieval_max), "zeroshot": tasks}


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
    ap.add_argument("--shards", default="", help="open_clip-clip: the training shards (.jpg + .txt), brace pattern")
    ap.add_argument("--warmup", type=int, default=50, help="open_clip-clip: warm-up steps (as the tvdim rows)")
    ap.add_argument("--temperature", type=float, default=None,
                    help="lightly-simclr: NT-Xent temperature (default: the example's 0.5); an ablation, not the peer")
    ap.add_argument("--optimizer", choices=OPTIMIZERS, default="lightly",
                    help="lightly peers: the example's SGD lr 0.06 (default), lightly's LARS benchmark recipe (for "
                         "VICReg, whose example diverges) or tvdim's Adam recipe (an ablation)")
    ap.add_argument("--views", choices=VIEWS, default=DEFAULTS["views"],
                    help="lightly peers: the example's view transform (default) or tvdim's AMDIM views (an ablation)")
    ap.add_argument("--head", choices=HEADS, default=DEFAULTS["head"],
                    help="lightly-simclr: lightly's SimCLRProjectionHead (default) or tvdim's head (an ablation)")
    ap.add_argument("--forward", choices=FORWARDS, default=DEFAULTS["forward"],
                    help="lightly peers: each view through the backbone as its own batch (default, lightly's "
                         "examples) or both views as one batch as tvdim does (an ablation)")
    ap.add_argument("overrides", nargs="*", help="section.key=value (data.* of the tvdim config)")
    args = ap.parse_args(argv)
    lib = "open_clip_train" if args.peer == OPEN_CLIP else "lightly"
    try:
        __import__(lib)
    except ImportError:
        sys.exit(f'peers: {lib} is not installed (pip install -e ".[peers]")')
    if args.peer == OPEN_CLIP:
        if not args.shards:
            sys.exit("peers: open_clip-clip reads WebDataset shards: give --shards 'DIR/name-{000000..000008}.tar'")
        path = train_open_clip(args.config, args.overrides, args.shards, args.backbone, args.size, args.batch,
                               args.steps, args.seed, Path(args.out), args.warmup)
    else:
        path = train_peer(args.peer, args.config, args.overrides, args.backbone, args.size, args.batch, args.steps,
                          args.seed, Path(args.out), temperature=args.temperature, optimizer=args.optimizer,
                          views=args.views, head=args.head, forward=args.forward)
    print(f"wrote {path} (evaluate with: tvdim evaluate {path})")


if __name__ == "__main__":
    main()
