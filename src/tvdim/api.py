"""Python API, the user-facing facade: load trained encoders from a checkpoint or an export and embed images or
captions. The work is done below, in :mod:`tvdim.loading` and :mod:`tvdim.hub`."""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import CheckpointError
from .hub import TvdimModel, from_pretrained, model_from_checkpoint
from .loading import Loaded, embed_images, embed_texts, load_method
from .method_spec import text_methods
from .models.backbones import ImageEncoder
from .models.text import TextEncoder
from .models.tokenizer import CaptionTokenizer


def load_model(path: str | Path, device: str | torch.device = "cpu") -> TvdimModel:
    """Encoders of a checkpoint or of an export folder (``tvdim export``) as a :class:`~tvdim.hub.TvdimModel`
    (eval mode): ``image_encoder``, ``text_encoder`` and ``tokenizer`` (None without text)."""
    if Path(path).is_dir():
        return from_pretrained(path, device)
    return model_from_checkpoint(load_method(path, device))


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> ImageEncoder:
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
                              f"encoder; use a {text_methods()} checkpoint")
    return model.text_encoder.eval(), model.tokenizer


__all__ = ["Loaded", "load_method", "load_model", "load_encoder", "load_text_encoder", "embed_images", "embed_texts"]
