"""The method interface: one object owns its encoders, losses and online probes.

The training loop only calls ``method(batch) -> StepOutput`` and sums nothing itself, so every method
(amdim, tvdim, tvdim-nce, clip, supervised) runs through the same loop, data and evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import Config
from ..distributed import global_mean_share
from ..errors import ConfigError
from ..losses import classifier_loss
from ..models.backbones import build_image_encoder
from ..models.hf_text import PretrainedTextEncoder
from ..models.text import TextEncoder


@dataclass
class StepOutput:
    """``loss``: the scalar to back-propagate; ``terms``: named loss terms (detached) for logging;
    ``metrics``: other numbers to log (e.g. online probe accuracy)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def build_text_encoder(cfg: Config, vocab_size: int | None, method: str,
                       n_out: int | None = None) -> TextEncoder | PretrainedTextEncoder:
    """Our Transformer trained from scratch, or the local Hugging Face model of ``text.pretrained``; its features
    have ``n_out`` (the image feature size; default ``model.n_rkhs``) dimensions."""
    t = cfg.text
    n_out = n_out or cfg.model.n_rkhs
    if t.freeze and not t.pretrained:
        raise ConfigError("text.freeze=true needs text.pretrained (a local Hugging Face model folder to keep fixed)")
    if t.pretrained:
        enc = PretrainedTextEncoder.from_folder(t.pretrained, n_out, t.pooling, t.freeze)
        if enc.max_len and t.max_len > enc.max_len:
            raise ConfigError(f"text.max_len={t.max_len} is more than the {enc.max_len} positions of {t.pretrained}")
        return enc
    if not vocab_size:
        raise ValueError(f"method '{method}' uses text: give the tokenizer's vocab_size")
    return TextEncoder(vocab_size, n_out, t.max_len, t.dim, t.layers, t.heads, t.dropout, t.pooling)


class Method(nn.Module):
    """Base class: builds the image encoder, the optional text encoder and one online linear probe per task.

    Args:
        cfg: the full config. tasks: label name -> number of classes (online probes; may be empty).
        vocab_size: tokenizer vocabulary size, required when ``uses_text``.
    """

    name = "base"
    uses_text = False
    uses_all_parameters = True  # False when some parameters get no gradient (DDP must then look for them)

    def __init__(self, cfg: Config, tasks: dict[str, int], vocab_size: int | None = None) -> None:
        super().__init__()
        m = cfg.model
        self.cfg = cfg
        self.image_encoder = build_image_encoder(m)
        self.text_encoder: TextEncoder | PretrainedTextEncoder | None = None
        if self.uses_text:
            self.text_encoder = build_text_encoder(cfg, vocab_size, self.name, self.image_encoder.n_rkhs)
            if isinstance(self.text_encoder, PretrainedTextEncoder):
                self.uses_all_parameters = False  # e.g. BERT's pooler: we pool the token states ourselves
        self.probes = nn.ModuleDict({task: nn.Linear(self.image_encoder.n_rkhs, n) for task, n in tasks.items()})

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the method's own losses (everything but the online probes)."""
        probe_ids = {id(p) for p in self.probes.parameters()}
        return [p for p in self.parameters() if id(p) not in probe_ids]

    def probe_step(self, feats: torch.Tensor, labels: dict[str, torch.Tensor], out: StepOutput,
                   views: int = 1) -> torch.Tensor:
        """Online linear probes on detached features: returns their summed loss, logs loss and accuracy.

        ``feats``: ``[views * B, D]``, the views stacked in order; ``labels[task]``: ``[B]``, repeated per view."""
        total = feats.new_zeros((), dtype=torch.float32)
        for task, head in self.probes.items():
            y = labels.get(task)
            if y is None:
                continue
            y = y.repeat(views)
            logits = head(feats.detach().float())
            known = y >= 0
            loss = global_mean_share(known) * classifier_loss(logits, y)  # ranks may know different label counts
            total = total + loss
            if bool(known.any()):
                out.metrics[f"probe_acc/{task}"] = (logits[known].argmax(1) == y[known]).float().mean().detach()
            out.terms[f"probe/{task}"] = loss.detach()
        return total

    def forward(self, batch: dict) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError
