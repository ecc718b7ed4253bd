"""Each method's loss terms, total and gradients against the objective of METHOD.md computed by hand.

The expectation below is written from METHOD.md in float64 with plain exponentials and loops over rows, and shares
no code with ``tvdim.losses``: it reads only the encoders' outputs (captured with forward hooks, so it sits on the
same autograd graph). Non-default ``loss.*`` values check that the method passes the config through, and the
gradient comparison checks that nothing is detached (the NCE regulariser, the r5 / r7 targets, the text tower).
"""
from __future__ import annotations

import math

import pytest
import torch

from tvdim.config import load_config
from tvdim.methods import build_method
from tvdim.models.tokenizer import CaptionTokenizer

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "text.dim=32", "text.layers=1", "text.vocab_size=200",
        "text.dropout=0.0", "train.device=cpu"]
CAPTIONS = ["a small red circle at the top", "a big blue square", "the picture shows a green star",
            "a tiny yellow triangle on the left", "we see a purple diamond", "an orange cross in the middle"]
HAS_TEXT = [True, True, False, True, True, False]


@pytest.fixture(scope="module")
def tok():
    return CaptionTokenizer.train(CAPTIONS, vocab_size=200, max_len=16)


def batch_for(tok, seed=0):
    g = torch.Generator().manual_seed(seed)
    caps = [c if h else "" for c, h in zip(CAPTIONS, HAS_TEXT)]
    ids, mask = tok(caps)
    return {"x1": torch.randn(6, 3, 32, 32, generator=g), "x2": torch.randn(6, 3, 32, 32, generator=g),
            "ids": ids, "mask": mask, "has_text": torch.tensor(HAS_TEXT), "labels": {}, "n": 6, "bad": []}


# --- METHOD.md by hand ------------------------------------------------------------------------------------------

def cos(a, b):
    """``[B, D]`` x ``[N, D]`` -> ``[B, N]`` cosine similarities, float64."""
    a, b = a.double(), b.double()
    return (a @ b.T) / (a.norm(dim=1, keepdim=True) * b.norm(dim=1).unsqueeze(0))


def nce_by_hand(src, tgt, tclip, reg_coef):
    """METHOD.md "Intra-modality loss": src ``[B, D]``, tgt ``[B, D, L]``; positives = every location of the same
    image, negatives = every location of every other image. Returns (loss, regulariser)."""
    src, tgt = src.double(), tgt.double()
    b, d = src.shape
    raw = torch.einsum("id,jdl->ijl", src, tgt) / math.sqrt(d)  # [B, B, L]
    s = tclip * torch.tanh(raw / tclip)
    losses = []
    for i in range(b):
        neg = sum(s[i, j].exp().sum() for j in range(b) if j != i)
        for pos in s[i, i]:
            losses.append(-torch.log(pos.exp() / (pos.exp() + neg)))
    return torch.stack(losses).mean(), reg_coef * raw.pow(2).mean()


def pair_term_by_hand(a, b, valid, lc, kind, scale=None):
    """Image-text term over two ``[B, B]`` score matrices whose true pair of row i is column i (``a``: one direction,
    ``b``: the other). Rows and columns without a caption take no part. ``kind``: rank | nce."""
    rows = [i for i in range(len(valid)) if valid[i]]
    per_row = []
    for i in rows:
        negs = [j for j in rows if j != i]
        total = 0.0
        for s in (a, b):
            if kind == "nce":
                cols = [i] + negs
                logits = s[i, cols] * (1 / lc.temperature if scale is None else scale)
                total = total + (torch.log(logits.exp().sum()) - logits[0]) / 2
            elif lc.hinge == "logistic":
                hardest = max(s[i, j] for j in negs)
                total = total + torch.log1p(torch.exp(lc.gamma * (lc.margin - s[i, i])))
                total = total + torch.log1p(torch.exp(lc.gamma * (lc.margin + hardest)))
            else:
                hinges = torch.stack([torch.clamp(lc.margin - s[i, i] + s[i, j], min=0) for j in negs])
                total = total + (hinges.sum() if lc.hinge == "sum" else hinges.max())
        per_row.append(total)
    return torch.stack(per_row).mean()


def objective_by_hand(method, enc, txt, batch, locs):
    """Terms and total of METHOD.md's "Total objective" from the encoder outputs ``enc`` (r1, r5, r7 of both
    views stacked), the text output ``txt`` and the 5x5 source locations ``locs[v]`` of view v."""
    lc = method.cfg.loss
    b = batch["x1"].shape[0]
    r1, r5, r7 = (t.split(b) for t in enc)
    terms = {}
    if method.intra == "amdim":
        t5, t7 = [r.flatten(2) for r in r5], [r.flatten(2) for r in r7]
        src5 = [r5[v].flatten(2)[torch.arange(b), :, locs[v]] for v in range(2)]
        reg = 0.0
        for key, src, tgt in (("1t5", r1, t5), ("1t7", r1, t7), ("5t5", src5, t5)):
            (l12, g12), (l21, g21) = (nce_by_hand(src[0], tgt[1], lc.nce_tclip, lc.nce_reg),
                                      nce_by_hand(src[1], tgt[0], lc.nce_tclip, lc.nce_reg))
            terms[f"nce_{key}"] = (l12 + l21) / 2
            reg = reg + (g12 + g21) / 2
        terms["nce_reg"] = reg
    if method.intra == "simclr":
        terms["simclr"] = nt_xent_by_hand(method.proj(r1[0]), method.proj(r1[1]), lc.simclr_temperature)
    kind = None if method.inter == "none" else method.inter
    scale = method.logit_scale.exp().clamp(max=100) if getattr(method, "logit_scale", None) is not None else None
    if kind == "siglip":
        valid = batch["has_text"].tolist()
        s = [cos(r1[v], txt.sentence) for v in range(2)]
        terms["inter_siglip"] = sum(siglip_by_hand(sv, valid, method.siglip_log_scale, method.siglip_bias)
                                    for sv in s) / 2
    elif kind:
        valid = batch["has_text"].tolist()
        s = [cos(r1[v], txt.sentence) for v in range(2)]
        terms[f"inter_{kind}"] = sum(pair_term_by_hand(sv, sv.T, valid, lc, kind, scale) for sv in s) / 2
        if lc.local:
            mask = batch["mask"]
            local = []
            for v in range(2):
                # image global vs the caption's (non-padding) tokens; caption global vs the image's 49 r7 locations
                i_tok = torch.stack([torch.stack([cos(r1[v][i:i + 1], txt.tokens[j][mask[j]]).mean()
                                                  for j in range(b)]) for i in range(b)])
                t_img = torch.stack([torch.stack([cos(txt.sentence[i:i + 1], r7[v][j].flatten(1).T).mean()
                                                  for j in range(b)]) for i in range(b)])
                local.append(pair_term_by_hand(i_tok, t_img, valid, lc, kind))
            terms[f"inter_{kind}_local"] = sum(local) / 2
    intra = sum(v for k, v in terms.items() if k.startswith(("nce_", "simclr")))
    inter = sum(v for k, v in terms.items() if k.startswith("inter_"))
    return terms, intra + (lc.lam if method.intra != "none" else 1.0) * inter


def nt_xent_by_hand(z1, z2, temperature):
    """SimCLR's NT-Xent written out: each of the 2B anchors against its other view (positive) and the 2B - 2
    other projections (negatives), cosine / T, averaged over the anchors."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    losses = []
    for a in range(2 * n):
        p = (a + n) % (2 * n)
        others = [j for j in range(2 * n) if j != a]
        logits = torch.stack([z[a] @ z[j] for j in others]) / temperature
        losses.append(torch.logsumexp(logits, 0) - (z[a] @ z[p]) / temperature)
    return torch.stack(losses).mean()


def siglip_by_hand(s, valid, log_scale, bias):
    """SigLIP: mean over captioned images i of sum over captioned j of -log sigmoid(z_ij (e^t' s_ij + b))."""
    rows = [i for i in range(len(valid)) if valid[i]]
    per_row = []
    for i in rows:
        total = 0.0
        for j in rows:
            z = 1.0 if i == j else -1.0
            total = total - torch.nn.functional.logsigmoid(z * (log_scale.exp() * s[i, j] + bias))
        per_row.append(total)
    return torch.stack(per_row).mean()


CASES = [
    ("amdim", []),
    ("amdim", ["loss.nce_tclip=5.0", "loss.nce_reg=0.3", "loss.chunk_size=4"]),
    ("tvdim", []),
    ("tvdim", ["loss.margin=0.5", "loss.hinge=max", "loss.lam=0.3"]),
    ("tvdim", ["loss.hinge=logistic", "loss.gamma=3.0", "loss.margin=0.1"]),
    ("tvdim", ["loss.local=true", "loss.margin=0.35", "loss.lam=2.0"]),
    ("tvdim-nce", ["loss.temperature=0.5", "loss.lam=0.7"]),
    ("tvdim-nce", ["loss.local=true", "loss.temperature=0.25"]),
    ("clip", ["loss.temperature=0.3", "loss.lam=0.5", "loss.learn_scale=off"]),  # the fixed temperature
    ("clip", []),  # CLIP's learnt logit scale, initialised at 1 / 0.07
    ("simclr", ["loss.simclr_temperature=0.2", "loss.proj_dim=8", "loss.proj_hidden=12"]),
    ("slip", ["loss.lam=0.6"]),
    ("siglip", []),
    ("tvdim", ["loss.intra_term=simclr", "loss.inter_term=siglip", "loss.lam=0.4"]),  # any combination by config
    ("amdim", ["loss.inter_term=rank"]),  # = tvdim
]


def run_case(tok, name, extra, monkeypatch):
    cfg = load_config(overrides=TINY + [f"train.method={name}", *extra])
    torch.manual_seed(0)
    method = build_method(cfg, {}, tok.vocab_size)
    method.train()
    locs = []

    def pick(fmap, generator=None):  # a known, per-image 5x5 source location (different for the two views)
        idx = (torch.arange(fmap.shape[0]) * 7 + 3 + 11 * len(locs)) % (fmap.shape[2] * fmap.shape[3])
        locs.append(idx)
        return fmap.flatten(2)[torch.arange(fmap.shape[0]), :, idx]

    monkeypatch.setattr("tvdim.methods.contrastive.random_locations", pick)
    seen = {}
    method.image_encoder.register_forward_hook(lambda m, i, o: seen.update(enc=o))
    if method.text_encoder is not None:
        method.text_encoder.register_forward_hook(lambda m, i, o: seen.update(txt=o))
    batch = batch_for(tok)
    out = method(batch)
    terms, total = objective_by_hand(method, seen["enc"], seen.get("txt"), batch, locs)
    return method, out, terms, total


@pytest.mark.parametrize("name,extra", CASES)
def test_terms_and_total_match_method_md(name, extra, tok, monkeypatch):
    method, out, terms, total = run_case(tok, name, extra, monkeypatch)
    loss_terms = {k for k in out.terms if k.startswith(("nce_", "inter_", "simclr"))}
    assert loss_terms == set(terms)
    for key, want in terms.items():
        assert out.terms[key].item() == pytest.approx(want.item(), rel=1e-4, abs=1e-5), key
    assert out.loss.item() == pytest.approx(total.item(), rel=1e-4, abs=1e-5)
    assert out.terms["total"].item() == pytest.approx(total.item(), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("name,extra", CASES)
def test_gradients_match_method_md(name, extra, tok, monkeypatch):
    """Every encoder parameter gets the gradient of the hand-computed objective: a detached regulariser, target
    map or text feature would change (or remove) some of them."""
    method, out, _, total = run_case(tok, name, extra, monkeypatch)
    params = [p for p in method.encoder_parameters() if p.requires_grad]
    got = torch.autograd.grad(out.loss, params, retain_graph=True, allow_unused=True)
    want = torch.autograd.grad(total, params, allow_unused=True)
    names = [n for n, p in method.named_parameters() if p.requires_grad and "probes." not in n]
    scale = max(float(w.abs().max()) for w in want if w is not None)  # float32 noise is relative to this
    for n, p, g, w in zip(names, params, got, want):
        g = torch.zeros_like(p) if g is None else g
        w = torch.zeros_like(p) if w is None else w.to(p.dtype)
        assert torch.allclose(g, w, rtol=1e-3, atol=1e-4 * scale), n
    unused = [n for n, g in zip(names, got) if g is None]
    # DDP must be told to look for parameters without a gradient exactly when some exist
    assert (not unused) == method.uses_all_parameters, unused
    if method.intra == "amdim":
        # the r5 / r7 heads are trained (their zero-initialised branches get no gradient at the first step)
        heads = [g for n, g in zip(names, got) if n in ("image_encoder.rkhs5.shortcut.weight",
                                                         "image_encoder.rkhs7.shortcut.weight")]
        assert len(heads) == 2 and all(g is not None and float(g.abs().sum()) > 0 for g in heads)
