"""Optional pretrained text tower: a local Hugging Face model folder (``text.pretrained``), mean-pooled into our
projection to ``n_rkhs``.

Needs ``transformers`` (``pip install 'tvdim[hf]'``). Everything is read with ``local_files_only=True``: a folder
that is not there is an error, never a download. The folder's fast tokenizer (``tokenizer.json``) is wrapped in a
:class:`CaptionTokenizer`, so batches, checkpoints and exports handle it like our own WordPiece tokenizer.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from ..errors import ConfigError
from .text import TextOutput, pool
from .tokenizer import CaptionTokenizer


def transformers_module() -> Any:
    """``import transformers`` or a ConfigError saying how to install it."""
    try:
        import transformers
    except ImportError as exc:
        raise ConfigError("text.pretrained needs the transformers package: pip install 'tvdim[hf]'") from exc
    return transformers


def _folder(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(f"text.pretrained: no such folder {p} (give a local Hugging Face model folder with "
                          "config.json, the weights and tokenizer.json; nothing is downloaded)")
    if not (p / "config.json").is_file():
        raise ConfigError(f"text.pretrained: {p} has no config.json, so it is not a Hugging Face model folder")
    return p


def hf_tokenizer(path: str | Path, max_len: int = 32) -> CaptionTokenizer:
    """The folder's fast tokenizer as a :class:`CaptionTokenizer` (its own padding token, truncation to max_len)."""
    folder = _folder(path)
    tf = transformers_module()
    try:
        hf = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises OSError / ValueError / KeyError for unusable folders
        raise ConfigError(f"text.pretrained: cannot load a tokenizer from {folder}: {exc}") from exc
    if not getattr(hf, "is_fast", False):
        raise ConfigError(f"text.pretrained: {folder} has no fast tokenizer (tokenizer.json); save one with "
                          "AutoTokenizer.from_pretrained(...).save_pretrained(folder)")
    backend = Tokenizer.from_str(hf.backend_tokenizer.to_str())  # a copy: CaptionTokenizer sets its padding
    pad_id = hf.pad_token_id if hf.pad_token_id is not None else 0
    return CaptionTokenizer(backend, max_len, pad_id=pad_id, pad_token=hf.pad_token or backend.id_to_token(pad_id))


class PretrainedTextEncoder(nn.Module):
    """A Hugging Face encoder (``AutoModel``) with our heads: same interface as :class:`~.text.TextEncoder`.

    Args:
        backbone: the transformers model (its ``last_hidden_state`` is pooled). n_rkhs: output size.
        pooling: ``mean`` (masked mean over tokens) or ``cls`` (first token). freeze: the backbone gets no gradient
            and stays in eval mode (no dropout); only ``token_head`` / ``sentence_head`` train.
    ``forward(ids [B, T], mask [B, T] bool, tokens=True) -> TextOutput``.
    """

    def __init__(self, backbone: nn.Module, n_rkhs: int, pooling: str = "mean", freeze: bool = False) -> None:
        super().__init__()
        self.backbone, self.pooling, self.freeze = backbone.float(), pooling, freeze
        hidden = int(backbone.config.hidden_size)
        self.max_len = int(getattr(backbone.config, "max_position_embeddings", 0) or 0)
        self.token_head = nn.Linear(hidden, n_rkhs)
        self.sentence_head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, n_rkhs))
        if freeze:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    @classmethod
    def from_folder(cls, path: str | Path, n_rkhs: int, pooling: str = "mean",
                    freeze: bool = False) -> "PretrainedTextEncoder":
        """Load the folder's weights (``AutoModel.from_pretrained(path, local_files_only=True)``)."""
        folder = _folder(path)
        tf = transformers_module()
        try:
            backbone = tf.AutoModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:
            raise ConfigError(f"text.pretrained: cannot load a model from {folder}: {exc}") from exc
        return cls(backbone, n_rkhs, pooling, freeze)

    @classmethod
    def from_config(cls, config: dict[str, Any], n_rkhs: int, pooling: str = "mean",
                    freeze: bool = False) -> "PretrainedTextEncoder":
        """The same architecture with fresh weights, from ``backbone_config()`` (an export's config.json)."""
        tf = transformers_module()
        conf = tf.AutoConfig.for_model(**config)
        return cls(tf.AutoModel.from_config(conf), n_rkhs, pooling, freeze)

    def backbone_config(self) -> dict[str, Any]:
        """The backbone's Hugging Face config as a plain dict (rebuilds the architecture without its folder)."""
        return json.loads(self.backbone.config.to_json_string(use_diff=False))

    def train(self, mode: bool = True) -> "PretrainedTextEncoder":
        super().train(mode)
        if self.freeze:
            self.backbone.eval()
        return self

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, tokens: bool = True) -> TextOutput:
        if self.max_len and ids.shape[1] > self.max_len:
            raise ValueError(f"text of {ids.shape[1]} tokens is longer than the pretrained tower's "
                             f"{self.max_len} positions; lower text.max_len")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            h = self.backbone(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return TextOutput(self.token_head(h) if tokens else None, mask, self.sentence_head(pool(h, mask, self.pooling)))


__all__ = ["PretrainedTextEncoder", "hf_tokenizer", "transformers_module"]
