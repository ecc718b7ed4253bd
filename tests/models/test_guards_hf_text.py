"""Pretrained text tower (``text.pretrained``): nothing is downloaded, the folder's padding token and truncation,
freezing and pooling through every constructor, the position limit, and the heads."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tvdim.config import TextConfig
from tvdim.errors import ConfigError
from tvdim.models.hf_text import PretrainedTextEncoder, hf_tokenizer

transformers = pytest.importorskip("transformers")

CAPS = ["a small red circle at the top left", "two blue squares", "the picture shows a big green star"]
LONG = " ".join(["red circle"] * 40)


@pytest.fixture(scope="module")
def encoder(tiny_bert):
    return PretrainedTextEncoder.from_folder(tiny_bert, n_rkhs=8)


def _spy(monkeypatch, cls):
    real, seen = cls.from_pretrained, []

    def spy(path, *args, **kwargs):
        seen.append(kwargs)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cls, "from_pretrained", spy)
    return seen


# --- nothing is downloaded -------------------------------------------------------------------------------------

def test_tokenizer_and_model_are_read_local_files_only(tiny_bert, monkeypatch):
    tok_calls = _spy(monkeypatch, transformers.AutoTokenizer)
    model_calls = _spy(monkeypatch, transformers.AutoModel)
    hf_tokenizer(tiny_bert)
    PretrainedTextEncoder.from_folder(tiny_bert, n_rkhs=4)
    assert tok_calls and all(c.get("local_files_only") is True for c in tok_calls)
    assert model_calls and all(c.get("local_files_only") is True for c in model_calls)


def test_folder_errors_say_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="tokenizer.json; nothing is downloaded"):
        hf_tokenizer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        hf_tokenizer(tmp_path / "empty")
    with pytest.raises(ConfigError, match="has no config.json"):
        PretrainedTextEncoder.from_folder(tmp_path / "empty", n_rkhs=4)


def test_unloadable_folders_are_config_errors(tiny_bert, tmp_path, monkeypatch):
    only = tmp_path / "config-only"
    only.mkdir()
    shutil.copy(tiny_bert / "config.json", only / "config.json")
    with pytest.raises(ConfigError, match="cannot load a model from .*config-only"):
        PretrainedTextEncoder.from_folder(only, n_rkhs=4)

    def broken(*a, **kw):
        raise OSError("unreadable vocabulary")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", broken)
    with pytest.raises(ConfigError, match="cannot load a tokenizer from .*unreadable vocabulary"):
        hf_tokenizer(tiny_bert)


@pytest.mark.parametrize("loaded", [SimpleNamespace(is_fast=False), SimpleNamespace()], ids=["slow", "no-flag"])
def test_a_tokenizer_that_is_not_fast_is_refused(tiny_bert, monkeypatch, loaded):
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **kw: loaded)
    with pytest.raises(ConfigError, match=r"no fast tokenizer.*AutoTokenizer\.from_pretrained\(\.\.\.\)"):
        hf_tokenizer(tiny_bert)


# --- the folder's padding and our truncation -------------------------------------------------------------------

def _tokenizer_folder(tiny_bert, folder, pad_token):
    """The tiny BERT's tokenizer saved again with another padding token (or none), beside its config.json."""
    from transformers import PreTrainedTokenizerFast

    hf = transformers.AutoTokenizer.from_pretrained(str(tiny_bert), local_files_only=True)
    backend = hf.backend_tokenizer
    if pad_token is not None:
        backend.add_special_tokens([pad_token])
    fast = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", **({"pad_token": pad_token} if pad_token else {}))
    folder.mkdir()
    fast.save_pretrained(str(folder))
    shutil.copy(tiny_bert / "config.json", folder / "config.json")
    return folder


def _padding(tok):
    return json.loads(tok.to_json())["padding"]


def test_the_folders_own_padding_token_name(tiny_bert, tmp_path):
    folder = _tokenizer_folder(tiny_bert, tmp_path / "pad", "<pad>")
    hf = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    tok = hf_tokenizer(folder, max_len=16)
    assert tok.pad_id == hf.pad_token_id == hf.convert_tokens_to_ids("<pad>")
    assert _padding(tok)["pad_token"] == "<pad>" and _padding(tok)["pad_id"] == tok.pad_id
    ids, mask = tok(CAPS)
    assert bool((ids[~mask] == tok.pad_id).all())


def test_without_a_padding_token_id_0_pads_under_its_own_name(tiny_bert, tmp_path):
    folder = _tokenizer_folder(tiny_bert, tmp_path / "nopad", None)
    hf = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    assert hf.pad_token is None and hf.pad_token_id is None
    tok = hf_tokenizer(folder, max_len=16)
    assert tok.pad_id == 0
    assert _padding(tok)["pad_token"] == hf.convert_ids_to_tokens(0)
    ids, mask = tok(CAPS)
    assert bool((ids[~mask] == 0).all()) and not bool(mask.all())


def test_truncation_follows_max_len(tiny_bert):
    assert hf_tokenizer(tiny_bert)(CAPS + [LONG])[0].shape[1] == TextConfig().max_len
    ids, mask = hf_tokenizer(tiny_bert, max_len=8)(CAPS + [LONG])
    assert ids.shape[1] == 8 and bool(mask[-1].all())


# --- freezing and pooling through every constructor ------------------------------------------------------------

def _frozen(enc):
    return enc.freeze and not any(p.requires_grad for p in enc.backbone.parameters())


def test_backbones_train_by_default(tiny_bert, encoder):
    assert not _frozen(encoder) and all(p.requires_grad for p in encoder.backbone.parameters())
    backbone = transformers.AutoModel.from_pretrained(str(tiny_bert), local_files_only=True)
    assert not PretrainedTextEncoder(backbone, 4).freeze
    rebuilt = PretrainedTextEncoder.from_config(encoder.backbone_config(), 4)
    assert not rebuilt.freeze and all(p.requires_grad for p in rebuilt.backbone.parameters())
    assert encoder.pooling == TextConfig().pooling


def _check_cls(enc, tiny_bert):
    enc.eval()
    ids, mask = hf_tokenizer(tiny_bert, 16)(CAPS)
    h = enc.backbone(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    out = enc(ids, mask)
    assert torch.allclose(out.sentence, enc.sentence_head(h[:, 0]), atol=1e-5)
    mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert not torch.allclose(out.sentence, enc.sentence_head(mean), atol=1e-4)


def test_from_folder_passes_pooling_and_freeze(tiny_bert):
    enc = PretrainedTextEncoder.from_folder(tiny_bert, n_rkhs=4, pooling="cls", freeze=True)
    assert _frozen(enc) and enc.pooling == "cls"
    _check_cls(enc, tiny_bert)


def test_from_config_passes_pooling_and_freeze(tiny_bert, encoder):
    enc = PretrainedTextEncoder.from_config(encoder.backbone_config(), 4, pooling="cls", freeze=True)
    assert _frozen(enc) and enc.pooling == "cls"
    _check_cls(enc, tiny_bert)


def test_backbone_config_is_complete(encoder):
    """Every key of the config class, defaults included (an export rebuilds the architecture from it alone)."""
    conf = encoder.backbone_config()
    defaults = type(encoder.backbone.config)().to_dict()
    assert set(defaults) - {"transformers_version"} <= set(conf)
    assert conf["hidden_act"] == encoder.backbone.config.hidden_act


def test_train_without_argument_means_training(encoder):
    encoder.eval()
    assert encoder.train() is encoder
    assert encoder.training and encoder.sentence_head.training and encoder.backbone.training


def test_no_graph_for_the_backbone_under_no_grad(encoder):
    ids = torch.tensor([[1, 7, 8, 2]])
    seen = []
    handle = encoder.backbone.register_forward_hook(lambda m, i, o: seen.append(o.last_hidden_state.requires_grad))
    try:
        with torch.no_grad():
            encoder(ids, ids != 3)
        encoder(ids, ids != 3)
    finally:
        handle.remove()
    assert seen == [False, True]


# --- the position limit --------------------------------------------------------------------------------------

def test_position_limit_is_the_backbones(tiny_bert, encoder):
    limit = transformers.AutoConfig.from_pretrained(str(tiny_bert), local_files_only=True).max_position_embeddings
    ids = torch.full((1, limit), 7)
    assert encoder(ids, torch.ones_like(ids, dtype=torch.bool)).sentence.shape == (1, 8)
    ids = torch.full((1, limit + 1), 7)
    with pytest.raises(ValueError, match=f"text of {limit + 1} tokens .* {limit} positions"):
        encoder(ids, torch.ones_like(ids, dtype=torch.bool))


class _NoPositions(nn.Module):
    """A backbone whose config names no position limit (e.g. relative positions)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(hidden_size=4)
        self.emb = nn.Embedding(10, 4)

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(last_hidden_state=self.emb(input_ids))


def test_a_backbone_without_position_limit_takes_any_length():
    enc = PretrainedTextEncoder(_NoPositions(), 3)
    assert enc.max_len == 0
    ids = torch.randint(0, 10, (2, 200))
    assert enc(ids, torch.ones_like(ids, dtype=torch.bool)).sentence.shape == (2, 3)


# --- the heads ----------------------------------------------------------------------------------------------

def test_heads_and_outputs(tiny_bert, encoder):
    enc = encoder.eval()
    ids, mask = hf_tokenizer(tiny_bert, 16)(CAPS)
    out = enc(ids, mask)
    h = enc.backbone(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    lin_a, lin_b = enc.sentence_head[0], enc.sentence_head[-1]
    assert torch.allclose(out.sentence, lin_b(F.gelu(lin_a(mean))), atol=1e-5)
    assert torch.allclose(out.tokens, enc.token_head(h), atol=1e-5)
    assert out.mask is mask
    short = enc(ids, mask, tokens=False)
    assert short.tokens is None and short.mask is mask and torch.allclose(short.sentence, out.sentence, atol=1e-6)
