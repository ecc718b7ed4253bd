"""Text encoder: padding never changes the sentence feature."""
from __future__ import annotations

import pytest
import torch

from tvdim.models.text import TextEncoder



def _enc(pooling):
    torch.manual_seed(0)
    return TextEncoder(vocab_size=50, n_rkhs=16, max_len=12, dim=32, layers=2, heads=4, dropout=0.1,
                       pooling=pooling).eval()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_appending_padding_does_not_change_sentence(pooling):
    enc = _enc(pooling)
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 5, 3, 0, 0]])
    mask = ids != 0
    out = enc(ids, mask)
    pad = torch.zeros(2, 4, dtype=torch.long)
    ids2 = torch.cat([ids, pad], 1)
    out2 = enc(ids2, ids2 != 0)
    assert out2.sentence.shape == (2, 16) and out2.tokens.shape == (2, 9, 16)
    assert torch.allclose(out.sentence, out2.sentence, atol=1e-5)
    # the real tokens' features do not change either
    assert torch.allclose(out.tokens[0], out2.tokens[0, :5], atol=1e-5)
    assert torch.allclose(out.tokens[1, :3], out2.tokens[1, :3], atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_masked_positions_content_is_ignored(pooling):
    enc = _enc(pooling)
    ids = torch.tensor([[2, 7, 9, 3, 0, 0]])
    mask = torch.tensor([[True, True, True, True, False, False]])
    a = enc(ids, mask).sentence
    ids2 = ids.clone()
    ids2[0, 4:] = torch.tensor([17, 33])  # garbage under the mask
    b = enc(ids2, mask).sentence
    assert torch.allclose(a, b, atol=1e-5)
    c = enc(ids2, torch.ones_like(mask)).sentence  # unmasked, the same tokens do count
    assert not torch.allclose(a, c, atol=1e-4)


def test_rows_are_independent_and_content_matters():
    enc = _enc("mean")
    ids = torch.tensor([[2, 7, 9, 3], [2, 8, 10, 3]])
    out = enc(ids, ids != 0)
    single = enc(ids[:1], ids[:1] != 0)
    assert torch.allclose(out.sentence[:1], single.sentence, atol=1e-5)
    assert not torch.allclose(out.sentence[0], out.sentence[1], atol=1e-4)


def test_too_long_input_raises():
    enc = _enc("mean")
    ids = torch.ones(1, 13, dtype=torch.long)
    with pytest.raises(ValueError, match="max_len=12"):
        enc(ids, ids != 0)
