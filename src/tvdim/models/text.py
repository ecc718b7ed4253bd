"""Text encoder trained from scratch: token embeddings -> Transformer -> token (local) and sentence (global) features."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class TextOutput(NamedTuple):
    """``tokens``: ``[B, T, n_rkhs]`` local features (None unless asked for); ``mask``: ``[B, T]`` bool;
    ``sentence``: ``[B, n_rkhs]``."""

    tokens: torch.Tensor | None
    mask: torch.Tensor
    sentence: torch.Tensor


class TextEncoder(nn.Module):
    """Small pre-norm Transformer over WordPiece ids.

    Args:
        vocab_size, max_len: tokenizer settings. dim/layers/heads/dropout: Transformer size.
        n_rkhs: output size (matches the image features). pooling: ``mean`` (masked mean) or ``cls`` (first token).
    ``forward(ids [B, T], mask [B, T] bool, tokens=True) -> TextOutput``; ``tokens=False`` skips the token head
    (only the local terms use it). Padding never changes the sentence feature.
    """

    def __init__(self, vocab_size: int, n_rkhs: int, max_len: int = 32, dim: int = 256, layers: int = 2,
                 heads: int = 4, dropout: float = 0.1, pooling: str = "mean") -> None:
        super().__init__()
        self.pooling = pooling
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.token_head = nn.Linear(dim, n_rkhs)
        self.sentence_head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, n_rkhs))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, tokens: bool = True) -> TextOutput:
        t = ids.shape[1]
        if t > self.pos.shape[0]:
            raise ValueError(f"text of {t} tokens is longer than text.max_len={self.pos.shape[0]}")
        h = self.embed(ids) + self.pos[:t]
        h = self.norm(self.transformer(h, src_key_padding_mask=~mask))
        return TextOutput(self.token_head(h) if tokens else None, mask, self.sentence_head(pool(h, mask, self.pooling)))


def pool(h: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Sentence feature ``[B, D]`` from token states ``[B, T, D]``: the first token (``cls``) or the masked mean."""
    if pooling == "cls":
        return h[:, 0]
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)
