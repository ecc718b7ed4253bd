"""The loading layer: a checkpoint turned back into objects (:class:`Loaded`), and features of images or captions
from the loaded encoders. Below evaluation, export and the user-facing :mod:`tvdim.api`, which re-exports it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .config import Config, from_dict
from .data.eval_image import EvalImage
from .errors import CheckpointError
from .methods import Method, build_method
from .models.backbones import ImageEncoder
from .models.text import TextEncoder
from .models.tokenizer import CaptionTokenizer
from .train.checkpoint import FOR_MODEL, load_checkpoint, nonfinite_tensors


@dataclass
class Loaded:
    """A checkpoint turned back into objects: ``method`` (eval mode), its ``config``, ``tokenizer`` (or None),
    label ``tasks`` (name -> class names), the training ``step`` and the checkpoint ``path``."""

    method: Method
    config: Config
    tokenizer: CaptionTokenizer | None
    tasks: dict[str, list[str]]
    step: int
    path: Path


def load_method(path: str | Path, device: str | torch.device = "cpu") -> Loaded:
    """Rebuild the method of a checkpoint and load its weights (``weights_only``: nothing in it is executed)."""
    state = load_checkpoint(path, FOR_MODEL)
    bad = nonfinite_tensors(state["model"])
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} of {len(state['model'])} weight tensors hold NaN or infinite "
                              f"values (e.g. {', '.join(bad[:3])}); training diverged before this checkpoint")
    cfg = from_dict(state["config"])
    tasks: dict[str, Any] = state.get("tasks") or {}
    tok = CaptionTokenizer.from_json(state["tokenizer"], cfg.text.max_len) if state.get("tokenizer") else None
    method = build_method(cfg, {t: len(v) for t, v in tasks.items()}, tok.vocab_size if tok else None)
    try:
        method.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match method '{cfg.train.method}': {str(exc)[:300]}") from exc
    return Loaded(method.to(device).eval(), cfg, tok, tasks, int(state.get("step", 0)), Path(path))


@torch.no_grad()
def embed_images(encoder: ImageEncoder, images: Sequence[Image.Image] | torch.Tensor,
                 batch_size: int = 256) -> torch.Tensor:
    """``[N, n_rkhs]`` global features of PIL images (test transform applied) or of a normalised tensor batch."""
    encoder.eval()
    device = next(encoder.parameters()).device
    if isinstance(images, torch.Tensor):
        batches = list(images.split(batch_size))
    else:
        tf = EvalImage(encoder.image_size)  # the one evaluation transform (as tvdim evaluate and tvdim embed)
        items = [tf(im) for im in images]
        batches = [torch.stack(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    return torch.cat([encoder(b.to(device)).r1 for b in batches])


@torch.no_grad()
def embed_texts(text_encoder: TextEncoder, tokenizer: CaptionTokenizer, captions: Sequence[str],
                batch_size: int = 256) -> torch.Tensor:
    """``[N, n_rkhs]`` sentence features of captions."""
    text_encoder.eval()
    device = next(text_encoder.parameters()).device
    out = []
    for i in range(0, len(captions), batch_size):
        ids, mask = tokenizer(list(captions[i:i + batch_size]))
        out.append(text_encoder(ids.to(device), mask.to(device)).sentence)
    return torch.cat(out)


__all__ = ["Loaded", "load_method", "embed_images", "embed_texts"]
