"""WordPiece caption tokenizer."""
from __future__ import annotations

import pytest
import torch

from tvdim.errors import DataError
from tvdim.models.tokenizer import CLS_ID, PAD_ID, SEP_ID, CaptionTokenizer

CORPUS = ["a small red circle at the top left", "a large blue square in the middle",
          "the picture shows a tiny green triangle", "there is a huge yellow star on the right",
          "we see a purple diamond and an orange cross"] * 4


@pytest.fixture(scope="module")
def tok():
    return CaptionTokenizer.train(CORPUS, vocab_size=400, max_len=8)


def test_ids_start_with_cls_end_with_sep_and_pad_with_zero(tok):
    ids, mask = tok(["a", "a large blue square in the middle"])
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert bool((ids[:, 0] == CLS_ID).all())
    assert PAD_ID == 0
    short = ids[0]
    n = int(mask[0].sum())
    assert short[n - 1].item() == SEP_ID
    assert bool((short[n:] == PAD_ID).all()) and n == 3 and ids.shape[1] == 8
    assert torch.equal(mask, ids != PAD_ID)


def test_truncation_to_max_len(tok):
    ids, mask = tok([" ".join(["red circle"] * 20)])
    assert ids.shape == (1, 8)
    assert bool(mask.all())
    assert ids[0, 0].item() == CLS_ID


def test_fixed_length_batches(tok):
    """Every batch is padded to max_len (batches from different ranks can be gathered)."""
    ids, mask = tok(["a", "a blue square"])
    assert ids.shape == (2, 8)
    assert int(mask[0].sum()) == 3  # [CLS] a [SEP]
    assert int(mask[1].sum()) < 8


def test_empty_caption_gives_cls_sep(tok):
    ids, mask = tok(["", "a red circle"])
    assert ids[0, 0].item() == CLS_ID and ids[0, 1].item() == SEP_ID
    assert int(mask[0].sum()) == 2


@pytest.mark.parametrize("corpus", [[], ["", "   ", "\n"]])
def test_empty_corpus_is_data_error(corpus):
    with pytest.raises(DataError, match="no non-empty caption"):
        CaptionTokenizer.train(corpus)


def test_json_round_trip_and_file(tok, tmp_path):
    caps = ["a tiny green triangle", "unknown words zebra qux", "the middle"]
    ids, mask = tok(caps)
    back = CaptionTokenizer.from_json(tok.to_json(), max_len=8)
    ids2, mask2 = back(caps)
    assert torch.equal(ids, ids2) and torch.equal(mask, mask2)
    assert back.vocab_size == tok.vocab_size
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    ids3, _ = CaptionTokenizer.from_file(path, max_len=8)(caps)
    assert torch.equal(ids, ids3)


def test_from_file_bad_file_is_data_error(tmp_path):
    bad = tmp_path / "tok.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="tok.json"):
        CaptionTokenizer.from_file(bad)


def test_saved_tokenizer_reproduces_ids(tmp_path):
    """Training may break ties differently from call to call (documented), so runs pin the saved tokenizer."""
    from tvdim.config import load_config
    from tvdim.data.sources import caption_corpus

    corpus = caption_corpus(load_config(overrides=["data.synth_train=64"]).data)
    tok = CaptionTokenizer.train(corpus, vocab_size=200)
    tok.save(tmp_path / "tok.json")
    again = CaptionTokenizer.from_file(tmp_path / "tok.json")
    assert torch.equal(tok(corpus[:8])[0], again(corpus[:8])[0])
    assert (tok(corpus[:8])[0][:, 0] == 2).all()  # [CLS]


@pytest.mark.parametrize("max_len", [5, 12])
def test_padding_never_exceeds_max_len(max_len):
    """Padding goes to a multiple of 8 but stops at max_len (text.max_len=12 crashed the text encoder with 16)."""
    t = CaptionTokenizer.train(CORPUS, vocab_size=400, max_len=max_len)
    ids, mask = t(CORPUS[:5])
    assert ids.shape[1] <= max_len and mask.shape == ids.shape
    assert bool((ids[:, 0] == CLS_ID).all())
