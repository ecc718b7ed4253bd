"""One method table (tvdim/method_spec.py): config choices, the method registry, what needs text and the error
messages all read it, so a new preset is one line there."""
from __future__ import annotations

import pytest
import torch

from tvdim.config import load_config
from tvdim.errors import ConfigError
from tvdim.method_spec import METHOD_SPECS, MethodSpec, text_methods
from tvdim.methods import build_method, uses_text
from tvdim.methods.contrastive import ContrastiveMethod
from tvdim.methods.supervised import SupervisedMethod

TINY = ["model.ndf=8", "model.n_rkhs=16", "model.n_depth=1", "text.dim=16", "text.layers=1", "text.heads=2"]


def test_the_presets_and_their_terms():
    terms = {name: (s.intra, s.inter, s.needs_text) for name, s in METHOD_SPECS.items()}
    assert terms == {"amdim": ("amdim", "none", False), "tvdim": ("amdim", "rank", True),
                     "tvdim-nce": ("amdim", "nce", True), "clip": ("none", "nce", True),
                     "simclr": ("simclr", "none", False), "slip": ("simclr", "nce", True),
                     "siglip": ("none", "siglip", True),
                     "random": ("amdim", "none", False), "supervised": ("none", "none", False)}
    assert [n for n, s in METHOD_SPECS.items() if s.learn_scale] == ["clip", "slip"]
    assert text_methods() == "tvdim, tvdim-nce, clip, slip or siglip"


@pytest.mark.parametrize("name", ["amdim", "tvdim", "tvdim-nce", "clip", "random", "simclr", "slip", "siglip"])
def test_built_methods_follow_their_spec(name):
    spec = METHOD_SPECS[name]
    m = build_method(load_config(overrides=TINY + [f"train.method={name}"]), vocab_size=50)
    assert isinstance(m, ContrastiveMethod)
    assert (m.intra, m.inter, m.uses_text) == (spec.intra, spec.inter, spec.needs_text)
    assert (m.proj is not None) == (spec.intra == "simclr")
    assert (m.logit_scale is not None) == spec.learn_scale
    assert (m.siglip_bias is not None) == (spec.inter == "siglip")
    assert (m.text_encoder is not None) == spec.needs_text == uses_text(name)


def test_supervised_spec_builds_the_supervised_method():
    m = build_method(load_config(overrides=TINY + ["train.method=supervised"]), {"label": 3})
    assert isinstance(m, SupervisedMethod)


def test_a_new_preset_is_one_table_entry(monkeypatch):
    monkeypatch.setitem(METHOD_SPECS, "rank-only", MethodSpec("rank-only", "none", "rank", "ranking loss alone"))
    cfg = load_config(overrides=TINY + ["train.method=rank-only"])  # a valid config choice
    m = build_method(cfg, vocab_size=50)
    assert (m.intra, m.inter) == ("none", "rank") and m.text_encoder is not None and uses_text("rank-only")
    assert "rank-only" in text_methods()
    b = 4
    batch = {"x1": torch.randn(b, 3, 32, 32), "x2": torch.randn(b, 3, 32, 32),
             "ids": torch.randint(1, 50, (b, 6)), "mask": torch.ones(b, 6, dtype=torch.bool),
             "has_text": torch.ones(b, dtype=torch.bool)}
    out = m(batch)
    assert set(out.terms) == {"inter_rank", "total"} and torch.isfinite(out.loss)


def test_unknown_method_and_unknown_term_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match="unknown method 'nope'; valid methods: amdim, tvdim"):
        load_config(overrides=["train.method=nope"])
    monkeypatch.setitem(METHOD_SPECS, "odd", MethodSpec("odd", "amdim", "cosine", "an unknown image-text term"))
    with pytest.raises(ConfigError, match="unknown image-text term 'cosine'; known: rank, nce, siglip"):
        build_method(load_config(overrides=TINY + ["train.method=odd"]), vocab_size=50)


def test_config_terms_override_the_preset():
    cfg = load_config(overrides=TINY + ["train.method=amdim", "loss.intra_term=simclr", "loss.inter_term=rank"])
    assert uses_text(cfg) and not uses_text("amdim")
    m = build_method(cfg, vocab_size=50)
    assert (m.intra, m.inter, m.logit_scale) == ("simclr", "rank", None)
    m = build_method(load_config(overrides=TINY + ["train.method=clip", "loss.learn_scale=off"]), vocab_size=50)
    assert m.logit_scale is None
    with pytest.raises(ConfigError, match="loss.inter_term"):
        load_config(overrides=["loss.inter_term=cosine"])
