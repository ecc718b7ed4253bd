"""The caption tokenizer lower-cases: capitals tokenize as the lower-case caption (not as [UNK])."""
from __future__ import annotations

import pytest
import torch

from tvdim.models.tokenizer import CLS_ID, PAD_ID, SEP_ID, UNK_ID, CaptionTokenizer

CORPUS = ["a small red circle at the top left", "a large blue square in the middle",
          "the picture shows a tiny green triangle", "there is a huge yellow star on the right"] * 4


@pytest.fixture(scope="module")
def tok():
    return CaptionTokenizer.train(CORPUS, vocab_size=200, max_len=16)


def _words(tok, caption):
    ids, mask = tok([caption])
    return [i for i in ids[0][mask[0]].tolist() if i not in (CLS_ID, SEP_ID, PAD_ID)]


@pytest.mark.parametrize("caption", ["A Red Circle", "A RED CIRCLE", "a Red circlE"])
def test_capitals_tokenize_as_lower_case(tok, caption):
    lower = _words(tok, "a red circle")
    assert lower and UNK_ID not in lower  # words of the training corpus are known
    assert _words(tok, caption) == lower
    ids_a, mask_a = tok([caption])
    ids_b, mask_b = tok(["a red circle"])
    assert torch.equal(ids_a, ids_b) and torch.equal(mask_a, mask_b)


def test_capitals_are_not_unknown(tok):
    assert UNK_ID not in _words(tok, "The Picture Shows A Huge Yellow Star")


def test_saved_tokenizer_keeps_lower_casing(tok, tmp_path):
    """The tokenizer a run saves (tokenizer.json, checkpoints) and loads back lower-cases too."""
    tok.save(tmp_path / "tokenizer.json")
    for again in (CaptionTokenizer.from_file(tmp_path / "tokenizer.json", 16), CaptionTokenizer.from_json(tok.to_json(), 16)):
        assert _words(again, "A Red Circle") == _words(tok, "a red circle")


def test_capitalised_training_captions_give_lower_case_pieces():
    t = CaptionTokenizer.train([c.upper() for c in CORPUS], vocab_size=200, max_len=16)
    assert _words(t, "a red circle") == _words(t, "A RED CIRCLE")
    assert UNK_ID not in _words(t, "a red circle")
