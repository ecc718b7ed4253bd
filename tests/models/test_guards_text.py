"""Text encoder against its documented architecture: defaults from the config, a pre-norm GELU Transformer
recomputed by hand, the sentence MLP, pooling over the mask, and the size of every layer."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from tvdim.config import TextConfig
from tvdim.models.text import TextEncoder, pool


def _enc(pooling="mean", layers=2, dropout=0.1, max_len=12):
    torch.manual_seed(0)
    return TextEncoder(vocab_size=40, n_rkhs=6, max_len=max_len, dim=16, layers=layers, heads=4, dropout=dropout,
                       pooling=pooling).eval()


def test_defaults_are_the_configs():
    cfg = TextConfig()
    enc = TextEncoder(vocab_size=30, n_rkhs=8)
    assert enc.pos.shape == (cfg.max_len, cfg.dim) and enc.embed.embedding_dim == cfg.dim
    assert len(enc.transformer.layers) == cfg.layers
    layer = enc.transformer.layers[0]
    assert layer.self_attn.num_heads == cfg.heads
    assert layer.dropout.p == cfg.dropout and layer.self_attn.dropout == cfg.dropout
    assert enc.pooling == cfg.pooling


def test_parameter_count_from_the_sizes():
    """Embeddings V d + positions L d; per layer: attention 4 (d^2 + d), feed-forward 4d wide (8 d^2 + 5 d), two
    LayerNorms 4 d; final LayerNorm 2 d; token head d n + n; sentence MLP (d^2 + d) + (d n + n)."""
    v, n, length, d, layers = 40, 6, 12, 16, 3
    enc = TextEncoder(vocab_size=v, n_rkhs=n, max_len=length, dim=d, layers=layers, heads=4)
    per_layer = 4 * (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 4 * d
    want = v * d + length * d + layers * per_layer + 2 * d + (d * n + n) + (d * d + d) + (d * n + n)
    assert sum(p.numel() for p in enc.parameters()) == want


def test_construction_is_silent():
    """No nested-tensor warning (the pre-norm layers could not use it anyway)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TextEncoder(vocab_size=20, n_rkhs=4, max_len=8, dim=8, layers=1, heads=2)


def test_position_table_init_std():
    torch.manual_seed(0)
    enc = TextEncoder(vocab_size=10, n_rkhs=4, max_len=64, dim=64, layers=1, heads=2)
    pos = enc.pos.detach()
    assert float(pos.std()) == pytest.approx(0.02, rel=0.1) and abs(float(pos.mean())) < 0.002


def _reference(enc, ids, mask, pooling):
    """Eval-mode forward written out: h = embed + pos; per layer x += MHA(LN1 x) (padded keys masked), then
    x += W2 gelu(W1 LN2 x); final LN; sentence = W_b gelu(W_a pool(h)); tokens = token_head(h)."""
    b, t = ids.shape
    x = enc.embed.weight[ids] + enc.pos[:t]
    for layer in enc.transformer.layers:
        attn = layer.self_attn
        heads, d = attn.num_heads, x.shape[-1]
        y = F.layer_norm(x, (d,), layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
        q, k, v = (y @ attn.in_proj_weight.T + attn.in_proj_bias).chunk(3, -1)
        split = lambda z: z.view(b, t, heads, d // heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // heads)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + attn.out_proj(a)
        y = F.layer_norm(x, (d,), layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)
        x = x + layer.linear2(F.gelu(layer.linear1(y)))
    h = enc.norm(x)
    if pooling == "cls":
        s = h[:, 0]
    else:
        s = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    lin_a, lin_b = enc.sentence_head[0], enc.sentence_head[-1]
    return enc.token_head(h), lin_b(F.gelu(lin_a(s)))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_forward_is_a_pre_norm_gelu_transformer(pooling):
    enc = _enc(pooling)
    ids = torch.tensor([[2, 7, 9, 11, 3, 0], [2, 5, 3, 0, 0, 0], [4, 8, 10, 12, 14, 3]])
    mask = ids != 0
    out = enc(ids, mask)
    tokens, sentence = _reference(enc, ids, mask, pooling)
    torch.testing.assert_close(out.sentence, sentence, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.tokens[mask], tokens[mask], rtol=1e-4, atol=1e-5)


def test_cls_and_mean_pooling_differ():
    ids = torch.tensor([[2, 7, 9, 11, 3]])
    mask = ids != 0
    assert not torch.allclose(_enc("cls")(ids, mask).sentence, _enc("mean")(ids, mask).sentence, atol=1e-4)


def test_output_carries_the_mask_and_tokens_on_request():
    enc = _enc()
    ids = torch.tensor([[2, 7, 3, 0]])
    mask = ids != 0
    out = enc(ids, mask)
    assert out.mask is mask and out.tokens.shape == (1, 4, 6)
    short = enc(ids, mask, tokens=False)
    assert short.tokens is None and short.mask is mask
    assert torch.allclose(short.sentence, out.sentence)


def test_text_of_exactly_max_len_is_accepted():
    enc = _enc(max_len=12)
    ids = torch.randint(1, 40, (2, 12))
    out = enc(ids, torch.ones_like(ids, dtype=torch.bool))
    assert out.sentence.shape == (2, 6)
    with pytest.raises(ValueError, match="13 tokens"):
        enc(torch.ones(1, 13, dtype=torch.long), torch.ones(1, 13, dtype=torch.bool))


def test_pool_is_the_masked_mean_or_the_first_token():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[True, True, True, False, False], [False, True, False, False, False],
                         [False] * 5])
    mean = pool(h, mask, "mean")
    assert torch.allclose(mean[0], h[0, :3].mean(0))
    assert torch.allclose(mean[1], h[1, 1])  # one real token: its state, not half of it
    assert torch.equal(mean[2], torch.zeros(4))  # nothing real: zeros, not NaN
    h2 = h.clone()
    h2[~mask] = 1e3  # padded content never counts
    assert torch.allclose(pool(h2, mask, "mean"), mean)
    assert torch.equal(pool(h, mask, "cls"), h[:, 0])
