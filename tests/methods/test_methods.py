"""Every method through one forward / backward on a tiny batch built like tvdim.data.pipeline.Collator.

The loss terms' values and gradients against METHOD.md computed by hand: test_method_objective.py."""
from __future__ import annotations

import pytest
import torch

from tvdim.config import load_config
from tvdim.errors import ConfigError
from tvdim.methods import build_method, uses_text
from tvdim.models.tokenizer import CaptionTokenizer

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "text.dim=32", "text.layers=1",
        "text.vocab_size=200", "train.progress=false", "train.device=cpu"]
CAPTIONS = ["a small red circle at the top", "a big blue square", "the picture shows a green star",
            "a tiny yellow triangle on the left", "we see a purple diamond", "an orange cross in the middle",
            "a white ball and a red box", "a cyan wedge at the bottom"]
TASKS = {"shape": 6, "colour": 8}



@pytest.fixture(scope="module")
def tok():
    return CaptionTokenizer.train(CAPTIONS, vocab_size=200, max_len=16)


def cfg_for(method, *extra):
    return load_config(overrides=TINY + [f"train.method={method}", *extra])


def make_batch(tok, b=6, has_text=None, seed=0, captions=None):
    g = torch.Generator().manual_seed(seed)
    caps = list(captions or CAPTIONS[:b])
    has = torch.ones(b, dtype=torch.bool) if has_text is None else torch.tensor(has_text)
    caps = [c if bool(h) else "" for c, h in zip(caps, has)]  # Collator: no caption -> '' -> has_text False
    ids, mask = tok(caps)
    return {"x1": torch.randn(b, 3, 32, 32, generator=g), "x2": torch.randn(b, 3, 32, 32, generator=g),
            "ids": ids, "mask": mask, "has_text": torch.tensor([bool(c.strip()) for c in caps]),
            "labels": {"shape": torch.randint(0, 6, (b,), generator=g),
                       "colour": torch.tensor([0, -1, 2, 3, -1, 5][:b])},
            "n": b, "bad": []}


def build(method, tok, *extra, tasks=TASKS):
    torch.manual_seed(0)
    return build_method(cfg_for(method, *extra), tasks, tok.vocab_size)


EXPECTED = {
    "amdim": ({"nce_1t5", "nce_1t7", "nce_5t5", "nce_reg"}, {"inter_rank", "inter_nce"}),
    "tvdim": ({"nce_1t5", "nce_1t7", "nce_5t5", "nce_reg", "inter_rank"}, {"inter_nce"}),
    "tvdim-nce": ({"nce_1t5", "nce_1t7", "nce_5t5", "nce_reg", "inter_nce"}, {"inter_rank"}),
    "clip": ({"inter_nce"}, {"nce_1t5", "nce_1t7", "nce_5t5", "nce_reg", "inter_rank"}),
    "supervised": ({"sup/shape"}, {"nce_1t5", "inter_rank", "inter_nce"}),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_forward_backward_terms(name, tok):
    method = build(name, tok)
    method.train()
    out = method(make_batch(tok))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    present, absent = EXPECTED[name]
    assert present <= set(out.terms), sorted(out.terms)
    assert not (absent & set(out.terms)), sorted(out.terms)
    assert {"probe/shape", "probe/colour", "total"} <= set(out.terms)
    assert "probe_acc/shape" in out.metrics
    assert all(not v.requires_grad for v in out.terms.values())
    out.loss.backward()
    enc_grads = [p.grad for p in method.image_encoder.parameters() if p.grad is not None]
    assert enc_grads and all(bool(torch.isfinite(g).all()) for g in enc_grads)
    assert any(float(g.abs().sum()) > 0 for g in enc_grads)
    for head in method.probes.values():
        assert head.weight.grad is not None and float(head.weight.grad.abs().sum()) > 0
    if uses_text(name):
        assert method.text_encoder is not None
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in method.text_encoder.parameters())
    else:
        assert method.text_encoder is None


@pytest.mark.parametrize("name", ["amdim", "tvdim", "clip", "supervised"])
def test_probe_loss_does_not_train_encoder(name, tok):
    """Online probes read detached features: the encoder gradient is the same with or without labels."""
    method = build(name, tok)
    method.train()
    batch = make_batch(tok)
    grads = []
    for labels in (batch["labels"], {"shape": batch["labels"]["shape"]} if name == "supervised" else {}):
        method.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # random 5x5 location, dropout
        out = method({**batch, "labels": labels})
        out.loss.backward()
        grads.append([p.grad.clone() for p in method.encoder_parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def test_encoder_parameters_exclude_probes(tok):
    method = build("tvdim", tok)
    enc_ids = {id(p) for p in method.encoder_parameters()}
    assert not enc_ids & {id(p) for p in method.probes.parameters()}
    assert {id(p) for p in method.image_encoder.parameters()} <= enc_ids
    assert {id(p) for p in method.text_encoder.parameters()} <= enc_ids


def test_total_is_intra_plus_lambda_inter(tok):
    method = build("tvdim", tok, "loss.lam=0.5")
    method.train()
    batch = {**make_batch(tok), "labels": {}}
    out = method(batch)
    intra = sum(out.terms[k] for k in ("nce_1t5", "nce_1t7", "nce_5t5", "nce_reg"))
    assert torch.allclose(out.loss, intra + 0.5 * out.terms["inter_rank"], atol=1e-5)
    clip = build("clip", tok, "loss.lam=0.5")
    out = clip(batch)  # clip has no intra term: lambda does not scale its only loss
    assert torch.allclose(out.loss, out.terms["inter_nce"], atol=1e-6)


@pytest.mark.parametrize("name", ["tvdim", "tvdim-nce", "clip"])
def test_rows_without_caption_do_not_change_inter_term(name, tok):
    method = build(name, tok)
    method.eval()  # deterministic (no dropout) so only the caption ids differ
    batch = make_batch(tok, has_text=[True, False, True, True, False, True])
    assert batch["has_text"].tolist() == [True, False, True, True, False, True]
    key = "inter_rank" if name == "tvdim" else "inter_nce"
    torch.manual_seed(2)
    a = method(batch)
    other = dict(batch)
    ids2, mask2 = tok(["a purple diamond and an orange cross at the top left"] * 6)
    ids, mask = batch["ids"].clone(), batch["mask"].clone()
    width = min(ids.shape[1], ids2.shape[1])
    for i in (1, 4):  # rewrite the caption ids of the rows without text
        ids[i, :width], mask[i, :width] = ids2[i, :width], mask2[i, :width]
    other["ids"], other["mask"] = ids, mask
    torch.manual_seed(2)
    b = method(other)
    assert torch.allclose(a.terms[key], b.terms[key], atol=1e-6)
    assert torch.allclose(a.loss, b.loss, atol=1e-5)
    # whereas changing a captioned row's text does change it
    ids3 = batch["ids"].clone()
    ids3[0, 1:int(batch["mask"][0].sum()) - 1] = ids2[0, 1]
    torch.manual_seed(2)
    c = method({**batch, "ids": ids3})
    assert not torch.allclose(a.terms[key], c.terms[key], atol=1e-6)


def test_inter_term_zero_without_any_caption(tok):
    method = build("tvdim", tok)
    method.eval()
    out = method(make_batch(tok, has_text=[False] * 6))
    assert out.terms["inter_rank"].item() == 0.0
    assert torch.isfinite(out.loss)


def test_unknown_method_is_config_error_listing_methods(tok):
    cfg = cfg_for("amdim")
    cfg.train.method = "byol"
    with pytest.raises(ConfigError) as info:
        build_method(cfg, TASKS, tok.vocab_size)
    msg = str(info.value)
    assert "byol" in msg
    for name in ("amdim", "tvdim", "tvdim-nce", "clip", "simclr", "slip", "siglip", "supervised"):
        assert name in msg


def test_text_method_needs_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        build_method(cfg_for("tvdim"), TASKS, None)


def test_supervised_needs_labels_and_valid_task(tok):
    with pytest.raises(ValueError, match="labelled"):
        build_method(cfg_for("supervised"), {}, None)
    with pytest.raises(ValueError, match="nosuch"):
        build_method(cfg_for("supervised", "train.probe_task=nosuch"), TASKS, None)
    m = build_method(cfg_for("supervised", "train.probe_task=colour"), TASKS, None)
    assert m.task == "colour"


@pytest.mark.parametrize("name", ["amdim", "tvdim", "clip"])
def test_online_probe_sees_both_views(name, tok):
    """As the AMDIM reference: the online probes train on r1 of both views (labels repeated), on detached
    features; loss = CE(10 tanh(logits / 10)) + 1e-3 mean(logits^2) over the labelled rows."""
    method = build(name, tok)
    method.train()
    seen = {}
    method.image_encoder.register_forward_hook(lambda m, i, o: seen.update(r1=o.r1.detach()) or None)
    batch = make_batch(tok)
    out = method(batch)
    r1 = seen["r1"]
    assert r1.shape[0] == 2 * batch["x1"].shape[0]  # both views went through the encoder
    for task in ("shape", "colour"):
        y = batch["labels"][task].repeat(2)
        keep = y >= 0
        logits = method.probes[task](r1)[keep].double()
        clipped = 10 * torch.tanh(logits / 10)
        ce = (torch.logsumexp(clipped, 1) - clipped[torch.arange(len(logits)), y[keep]]).mean()
        assert out.terms[f"probe/{task}"].item() == pytest.approx((ce + 1e-3 * logits.pow(2).mean()).item(), rel=1e-5)
        acc = (logits.argmax(1) == y[keep]).double().mean().item()
        assert out.metrics[f"probe_acc/{task}"].item() == pytest.approx(acc)


def test_model_and_text_config_reach_the_encoders(tok):
    m = build("tvdim", tok, "model.use_bn=true", "text.pooling=cls")
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in m.image_encoder.to7[1].modules())  # inside a unit
    assert m.text_encoder.pooling == "cls"
    plain = build("tvdim", tok)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in plain.image_encoder.to7[1].modules())
    assert plain.text_encoder.pooling == "mean"


@pytest.mark.parametrize("name", ["amdim", "tvdim", "supervised"])
def test_loss_is_objective_plus_probe_losses(name, tok):
    """The probes' losses are added to the objective (they train the probes); a task absent from the batch's
    labels is skipped, the others still run."""
    method = build(name, tok)
    method.eval()  # deterministic: no dropout, BN at its running statistics
    batch = make_batch(tok)
    torch.manual_seed(4)
    bare = method({**batch, "labels": {"shape": batch["labels"]["shape"]}} if name == "supervised"
                  else {k: v for k, v in batch.items() if k != "labels"})  # no labels key at all
    torch.manual_seed(4)
    only_colour = {"colour": batch["labels"]["colour"]}
    if name == "supervised":
        only_colour["shape"] = batch["labels"]["shape"]
    out = method({**batch, "labels": only_colour})
    assert "probe/colour" in out.terms
    probes = sum(v for k, v in out.terms.items() if k.startswith("probe/"))
    base = bare.loss - sum(v for k, v in bare.terms.items() if k.startswith("probe/"))
    assert float(probes) > 0
    assert out.loss.item() == pytest.approx((base + probes).item(), rel=1e-5)
    if name != "supervised":
        assert "probe/shape" not in out.terms


def test_pad_tokens_pads_to_the_common_length_when_distributed(monkeypatch):
    from tvdim.methods import contrastive
    from tvdim.distributed import DistInfo

    tokens, mask = torch.randn(2, 3, 4), torch.tensor([[True, True, False], [True, True, True]])
    assert contrastive._pad_tokens(tokens, mask, 5)[0] is tokens  # one process: nothing to do
    monkeypatch.setattr(contrastive, "current", lambda: DistInfo(rank=1, world_size=2))
    padded, pmask = contrastive._pad_tokens(tokens, mask, 5)
    assert padded.shape == (2, 5, 4) and pmask.shape == (2, 5)
    assert torch.equal(padded[:, :3], tokens) and bool((padded[:, 3:] == 0).all())
    assert torch.equal(pmask[:, :3], mask) and not bool(pmask[:, 3:].any())
    one, one_mask = contrastive._pad_tokens(tokens, mask, 4)  # a single padding column is still added
    assert one.shape == (2, 4, 4) and one_mask.shape == (2, 4) and not bool(one_mask[:, 3].any())
    same = contrastive._pad_tokens(tokens, mask, 3)
    assert same[0] is tokens and same[1] is mask


def test_mlp_head_is_amdims():
    from tvdim.models.heads import mlp_head

    head = mlp_head(16, 5)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert head[0].p == 0.2 and head[4].p == 0.2
    assert (head[1].in_features, head[1].out_features, head[5].out_features) == (16, 1024, 5)
    assert mlp_head(16, 5, hidden=32, dropout=0.5)[1].out_features == 32


def test_error_messages_name_the_choices(tok):
    cfg = cfg_for("amdim")
    cfg.train.method = "byol"
    with pytest.raises(ConfigError, match=r"valid methods: amdim, tvdim, tvdim-nce, clip, simclr, slip, siglip, random, supervised$"):
        build_method(cfg, TASKS, tok.vocab_size)
    with pytest.raises(ValueError, match=r"^method 'supervised' needs labelled training data"):
        build_method(cfg_for("supervised"), {}, None)
    with pytest.raises(ValueError, match=r"labels: shape, colour$"):
        build_method(cfg_for("supervised", "train.probe_task=nosuch"), TASKS, None)


def test_supervised_loss_is_amdims_classifier_loss_on_view_1(tok):
    method = build("supervised", tok, "text.dropout=0.0")
    method.eval()  # no dropout in the MLP head: the value is deterministic
    seen = {}
    method.image_encoder.register_forward_hook(lambda m, i, o: seen.update(r1=o.r1.detach()) or None)
    batch = make_batch(tok)
    out = method(batch)
    assert seen["r1"].shape[0] == batch["x1"].shape[0]  # view 1 only
    logits = method.head(seen["r1"]).double()
    y = batch["labels"]["shape"]
    clipped = 10 * torch.tanh(logits / 10)
    want = (torch.logsumexp(clipped, 1) - clipped[torch.arange(len(y)), y]).mean() + 1e-3 * logits.pow(2).mean()
    assert out.terms["sup/shape"].item() == pytest.approx(want.item(), rel=1e-5)
