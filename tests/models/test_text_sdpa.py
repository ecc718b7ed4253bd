"""The text tower's attention goes through torch's fused ``scaled_dot_product_attention`` when training with padding
(nn.MultiheadAttention with ``need_weights=False``; flash / memory-efficient kernels on a GPU), with the same
result as the plain softmax(QK^T / sqrt(d) + mask) V."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tvdim.models.text import TextEncoder

LAYERS = 3


def _enc(dropout=0.0):
    torch.manual_seed(0)
    return TextEncoder(vocab_size=50, n_rkhs=16, max_len=12, dim=32, layers=LAYERS, heads=4, dropout=dropout).train()


def _batch():
    ids = torch.tensor([[2, 7, 9, 11, 3, 0], [2, 5, 3, 0, 0, 0], [2, 8, 10, 12, 14, 3]])
    return ids, ids != 0  # padded rows: the key padding mask reaches the attention


def _math_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **_):
    """The unfused reference (no dropout: the tests that use it build the tower with dropout 0)."""
    assert dropout_p == 0.0 and not is_causal
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(-1) @ v


@pytest.fixture
def sdpa_calls(monkeypatch):
    """Count calls of F.scaled_dot_product_attention; F.multi_head_attention_forward looks the name up as a module
    global of torch.nn.functional at call time, so patching the attribute there sees every call."""
    real, calls = F.scaled_dot_product_attention, []

    def spy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, *a, **kw):
        calls.append({"q": tuple(q.shape), "mask": attn_mask, "dropout_p": dropout_p})
        return real(q, k, v, attn_mask, dropout_p, is_causal, *a, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return calls


def test_train_mode_with_padding_calls_sdpa_once_per_layer(sdpa_calls):
    enc, (ids, mask) = _enc(dropout=0.1), _batch()
    enc(ids, mask)
    assert len(sdpa_calls) == LAYERS
    for c in sdpa_calls:
        assert c["q"] == (3, 4, 6, 8)  # [batch, heads, tokens, head dim]
        assert c["mask"] is not None  # the padding reaches the fused kernel as its mask
        assert c["dropout_p"] == pytest.approx(0.1)  # attention dropout stays inside the kernel in training
    enc(ids, mask)
    assert len(sdpa_calls) == 2 * LAYERS


def test_the_spy_passes_through(monkeypatch):
    """Same seed, same dropout masks: the tower's output with the counting spy equals the output without it."""
    enc, (ids, mask) = _enc(dropout=0.1), _batch()
    torch.manual_seed(1)
    plain = enc(ids, mask)
    real, n = F.scaled_dot_product_attention, [0]

    def spy(*a, **kw):
        n[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    torch.manual_seed(1)
    spied = enc(ids, mask)
    assert n[0] == LAYERS
    assert torch.equal(plain.sentence, spied.sentence) and torch.equal(plain.tokens, spied.tokens)


def test_fused_attention_equals_the_math(monkeypatch):
    """Outputs and gradients of the tower with torch's SDPA vs the same tower with the unfused reference."""
    (ids, mask) = _batch()
    fused = _enc()
    out = fused(ids, mask)
    (out.sentence.square().sum() + out.tokens[mask].sum()).backward()

    ref, n = _enc(), [0]

    def math_attention(*a, **kw):
        n[0] += 1
        return _math_attention(*a, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", math_attention)
    out_ref = ref(ids, mask)
    (out_ref.sentence.square().sum() + out_ref.tokens[mask].sum()).backward()
    assert n[0] == LAYERS  # the reference really replaced the fused call
    torch.testing.assert_close(out.sentence, out_ref.sentence, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.tokens[mask], out_ref.tokens[mask], rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(fused.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
