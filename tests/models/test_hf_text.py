"""Optional pretrained text tower (text.pretrained): a local Hugging Face folder, our heads on top."""
from __future__ import annotations

import sys

import pytest
import torch

from tvdim.api import embed_texts, load_text_encoder
from tvdim.config import load_config
from tvdim.errors import ConfigError
from tvdim.methods import build_method
from tvdim.models.hf_text import PretrainedTextEncoder, hf_tokenizer
from tvdim.train.checkpoint import load_checkpoint
from tvdim.train.trainer import pretrain

transformers = pytest.importorskip("transformers")

CAPS = ["a small red circle at the top left", "two blue squares", "", "the picture shows a big green star"]
TINY = ["model.ndf=8", "model.n_rkhs=16", "model.n_depth=1", "train.batch_size=8", "data.synth_train=32",
        "data.synth_test=16", "train.progress=false", "train.device=cpu", "train.steps=2", "train.method=tvdim",
        "text.max_len=16", "optim.warmup_steps=0", "optim.lr=1e-2"]


def test_tokenizer_is_the_folders_with_its_padding(tiny_bert):
    tok = hf_tokenizer(tiny_bert, max_len=16)
    hf = transformers.AutoTokenizer.from_pretrained(str(tiny_bert), local_files_only=True)
    ids, mask = tok(CAPS)
    ref = hf(CAPS, padding="max_length", max_length=ids.shape[1], truncation=True)
    assert ids.tolist() == ref["input_ids"]
    assert mask.long().tolist() == ref["attention_mask"]
    assert tok.pad_id == hf.pad_token_id == 3 and int(ids[2, -1]) == 3  # not our own padding id 0
    assert tok.vocab_size == hf.vocab_size


def test_encoder_mean_pools_the_backbone(tiny_bert):
    enc = PretrainedTextEncoder.from_folder(tiny_bert, n_rkhs=8).eval()
    ref = transformers.AutoModel.from_pretrained(str(tiny_bert), local_files_only=True).eval()
    for k, v in ref.state_dict().items():  # the folder's weights, not a fresh initialisation
        assert torch.equal(enc.backbone.state_dict()[k], v)
    ids, mask = hf_tokenizer(tiny_bert, 16)(CAPS)
    out = enc(ids, mask)
    assert out.sentence.shape == (4, 8) and out.tokens.shape == (4, ids.shape[1], 8)
    h = ref(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    m = mask.unsqueeze(-1).float()
    assert torch.allclose(out.sentence, enc.sentence_head((h * m).sum(1) / m.sum(1)), atol=1e-5)
    # padding never changes the sentence feature
    one = enc(*hf_tokenizer(tiny_bert, 16)(CAPS[:1]))
    assert torch.allclose(one.sentence, out.sentence[:1], atol=1e-5)


def test_build_method_uses_pretrained_tower(tiny_bert):
    cfg = load_config(overrides=TINY + [f"text.pretrained={tiny_bert}"])
    method = build_method(cfg, {}, None)
    assert isinstance(method.text_encoder, PretrainedTextEncoder)
    assert all(p.requires_grad for p in method.text_encoder.backbone.parameters())


def test_ddp_is_told_that_some_backbone_parameters_get_no_gradient(tiny_bert):
    """BERT's pooler is unused (we pool token states), so DDP must look for unused parameters."""
    cfg = load_config(overrides=TINY + [f"text.pretrained={tiny_bert}", "loss.local=true"])
    method = build_method(cfg, {}, None)
    assert method.uses_all_parameters is False
    ids, mask = hf_tokenizer(tiny_bert, 16)(CAPS)
    method.text_encoder(ids, mask).sentence.sum().backward()
    assert any(p.grad is None for p in method.text_encoder.backbone.parameters())


def test_freeze_keeps_backbone_fixed_and_in_eval_mode(tiny_bert, tmp_path):
    cfg = load_config(overrides=TINY + [f"text.pretrained={tiny_bert}", "text.freeze=true",
                                        f"train.out_dir={tmp_path / 'frozen'}"])
    method = build_method(cfg, {}, None).train()
    assert not method.text_encoder.backbone.training and method.text_encoder.sentence_head.training
    assert not any(p.requires_grad for p in method.text_encoder.backbone.parameters())
    before = transformers.AutoModel.from_pretrained(str(tiny_bert), local_files_only=True).state_dict()
    model = load_checkpoint(pretrain(cfg).checkpoint)["model"]
    for k, v in before.items():
        assert torch.equal(model[f"text_encoder.backbone.{k}"], v), k
    fresh = build_method(cfg, {}, None).state_dict()
    assert not torch.equal(model["text_encoder.sentence_head.0.weight"], fresh["text_encoder.sentence_head.0.weight"])


def test_unfrozen_backbone_trains(tiny_bert, tmp_path):
    cfg = load_config(overrides=TINY + [f"text.pretrained={tiny_bert}", f"train.out_dir={tmp_path / 'ft'}"])
    before = transformers.AutoModel.from_pretrained(str(tiny_bert), local_files_only=True).state_dict()
    model = load_checkpoint(pretrain(cfg).checkpoint)["model"]
    assert any(not torch.equal(model[f"text_encoder.backbone.{k}"], v) for k, v in before.items())


def test_checkpoint_loads_with_its_tokenizer(tiny_bert, tmp_path):
    cfg = load_config(overrides=TINY + [f"text.pretrained={tiny_bert}", "text.freeze=true",
                                        f"train.out_dir={tmp_path / 'run'}"])
    ckpt = pretrain(cfg).checkpoint
    assert not (tmp_path / "run" / "tokenizer.json").exists()  # no WordPiece training: the folder's tokenizer
    enc, tok = load_text_encoder(ckpt)
    assert isinstance(enc, PretrainedTextEncoder) and tok.pad_id == 3
    ref_ids, _ = hf_tokenizer(tiny_bert, 16)(CAPS)
    assert torch.equal(tok(CAPS)[0], ref_ids)
    t = embed_texts(enc, tok, CAPS)
    assert t.shape == (4, 16) and bool(torch.isfinite(t).all())


def test_errors_are_config_errors(tiny_bert, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no such folder"):
        build_method(load_config(overrides=TINY + [f"text.pretrained={tmp_path / 'nope'}"]), {}, None)
    with pytest.raises(ConfigError, match="text.freeze"):
        build_method(load_config(overrides=TINY + ["text.freeze=true"]), {}, 50)
    with pytest.raises(ConfigError, match="text.max_len=128"):
        build_method(load_config(overrides=TINY + [f"text.pretrained={tiny_bert}", "text.max_len=128"]), {}, None)
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'tvdim\[hf\]'"):
        hf_tokenizer(tiny_bert)
