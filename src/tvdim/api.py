"""Python API: load trained encoders from a checkpoint and embed images or captions."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from .config import Config, from_dict
from .data.eval_image import EvalImage
from .errors import CheckpointError
from .methods import Method, build_method
from .models.encoder import AmdimEncoder
from .models.text import TextEncoder
from .models.tokenizer import CaptionTokenizer
from .train.checkpoint import FOR_MODEL, load_checkpoint, nonfinite_tensors

if TYPE_CHECKING:
    from .hub import TvdimModel


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


def load_model(path: str | Path, device: str | torch.device = "cpu") -> "TvdimModel":
    """Encoders of a checkpoint or of an export folder (``tvdim export``) as a :class:`~tvdim.hub.TvdimModel`
    (eval mode): ``image_encoder``, ``text_encoder`` and ``tokenizer`` (None without text)."""
    from .hub import from_pretrained, model_from_checkpoint

    if Path(path).is_dir():
        return from_pretrained(path, device)
    return model_from_checkpoint(load_method(path, device))


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> AmdimEncoder:
    """The frozen image encoder (eval mode) of a checkpoint or an export folder. ``encoder(x).r1`` is the
    representation."""
    enc = load_model(path, device).image_encoder if Path(path).is_dir() else load_method(path, device).method.image_encoder
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc


def load_text_encoder(path: str | Path, device: str | torch.device = "cpu") -> tuple[TextEncoder, CaptionTokenizer]:
    """The text encoder and tokenizer of a checkpoint or export trained with text (tvdim, tvdim-nce, clip)."""
    model = load_model(path, device)
    if model.text_encoder is None or model.tokenizer is None:
        raise CheckpointError(f"{path} was trained with method '{model.method}', which has no text "
                              "encoder; use a tvdim, tvdim-nce or clip checkpoint")
    return model.text_encoder.eval(), model.tokenizer


@torch.no_grad()
def embed_images(encoder: AmdimEncoder, images: Sequence[Image.Image] | torch.Tensor,
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
