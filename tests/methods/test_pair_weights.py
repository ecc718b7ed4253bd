"""Robust image-text term (loss.robust): the stateful weighting and its plumbing into the contrastive methods."""
from __future__ import annotations

import pytest
import torch

from tvdim.config import load_config
from tvdim.errors import ConfigError
from tvdim.losses import ranking_loss_rows, small_loss_mask
from tvdim.methods.pair_weights import MIN_FIT, PairWeighting

from test_methods import build, make_batch, tok  # noqa: F401  (fixture; tests/methods is on sys.path)


def weighting(*extra):
    return PairWeighting(load_config(overrides=list(extra)).loss)


def test_warmup_then_weights_and_memory_ring():
    pw = weighting("loss.robust=small-loss", "loss.robust_warmup=2", "loss.robust_memory=40", "loss.robust_drop=0.5")
    pw.train()
    losses = torch.arange(20, dtype=torch.float32)
    valid = torch.ones(20, dtype=torch.bool)
    assert pw(losses, valid) is None and pw(losses, valid) is None  # warm-up: 2 steps of weight 1
    w = pw(losses, valid)  # step 3: memory holds 40 >= MIN_FIT values
    assert w is not None and w.tolist() == [1.0] * 10 + [0.0] * 10
    assert int(pw.filled) == 60 and int(pw.steps) == 3
    assert pw.memory.tolist() == list(range(20)) * 2  # ring: the third batch overwrote the first slots
    pw.eval()
    assert pw(losses, valid) is None  # never weights outside training, and the state is untouched
    assert int(pw.steps) == 3


def test_only_valid_pairs_enter_the_memory():
    pw = weighting("loss.robust=gmm", "loss.robust_memory=8")
    pw.train()
    pw(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([True, False, True, False]))
    assert int(pw.filled) == 2 and pw.memory[:2].tolist() == [1.0, 3.0]


def test_gmm_weights_are_clean_probabilities_and_zero_for_invalid():
    pw = weighting("loss.robust=gmm", "loss.robust_warmup=0", "loss.robust_memory=256")
    pw.train()
    g = torch.Generator().manual_seed(0)
    losses = torch.cat([0.1 * torch.rand(40, generator=g), 5 + 0.1 * torch.rand(40, generator=g)])
    valid = torch.ones(80, dtype=torch.bool)
    valid[0] = False
    w = pw(losses, valid)
    assert w is not None
    assert w[0] == 0 and (w[1:40] > 0.99).all() and (w[40:] < 0.01).all()
    assert pw.last["pairs/noisy_estimate"].item() == pytest.approx(40 / 79, abs=0.02)


def test_small_loss_rate_is_estimated_when_negative():
    pw = weighting("loss.robust=small-loss", "loss.robust_warmup=0", "loss.robust_memory=256", "loss.robust_drop=-1")
    pw.train()
    losses = torch.cat([torch.linspace(0, 0.1, 60), torch.linspace(5, 5.1, 20)])  # 25 % high-loss pairs
    w = pw(losses, torch.ones(80, dtype=torch.bool))
    assert w is not None and w.sum().item() == 60 and (w[:60] == 1).all()


def test_no_weights_before_the_memory_is_big_enough():
    pw = weighting("loss.robust=gmm", "loss.robust_warmup=0")
    pw.train()
    assert pw(torch.rand(MIN_FIT - 1), torch.ones(MIN_FIT - 1, dtype=torch.bool)) is None


@pytest.mark.parametrize("bad", ["loss.robust=coteach", "loss.robust_memory=0", "loss.robust_drop=1.0",
                                 "loss.robust_warmup=-1"])
def test_bad_robust_settings_are_config_errors(bad):
    with pytest.raises(ConfigError, match="loss.robust"):
        load_config(overrides=[bad])


@pytest.mark.parametrize("method", ["tvdim", "tvdim-nce", "clip"])
def test_robust_off_by_default_and_built_for_text_methods(method, tok):
    assert build(method, tok).pair_weights is None
    m = build(method, tok, "loss.robust=gmm", "loss.robust_warmup=7", "loss.robust_memory=50")
    assert m.pair_weights is not None and m.pair_weights.warmup == 7 and m.pair_weights.memory.numel() == 50
    assert "pair_weights.memory" in m.state_dict()  # saved with the checkpoint: exact resume
    assert build("amdim", tok, "loss.robust=gmm").pair_weights is None


def test_small_loss_drops_the_worst_pairs_from_the_ranking_term(tok):
    """tvdim with small-loss at rate 0.5: the inter term is the sum over the kept (smallest-loss) half of the
    per-pair ranking losses, divided by every valid pair; the plain term averages all pairs."""
    extra = ["loss.robust_warmup=0", "loss.robust_memory=64", "loss.robust_drop=0.5"]
    plain, robust = build("tvdim", tok, "text.dropout=0"), build("tvdim", tok, "loss.robust=small-loss",
                                                                 "text.dropout=0", *extra)
    robust.load_state_dict(plain.state_dict(), strict=False)
    robust.pair_weights.remember(torch.rand(MIN_FIT))  # a memory big enough to fit on
    batch = make_batch(tok)
    plain.train(), robust.train()
    torch.manual_seed(1)
    p_out = plain(batch)
    torch.manual_seed(1)
    r_out = robust(batch)
    # recompute the per-pair rows from the plain model's features, independently of the method's reduction
    with torch.no_grad():
        r1 = plain.image_encoder(torch.cat([batch["x1"], batch["x2"]]))[0].split(6)
        t = torch.nn.functional.normalize(plain.text_encoder(batch["ids"], batch["mask"]).sentence, dim=-1)
        rows = [ranking_loss_rows(g @ t.T, t @ g.T, 0, 0.2, "sum")
                for g in (torch.nn.functional.normalize(x, dim=-1) for x in r1)]
    per_pair = (rows[0] + rows[1]) / 2
    keep = small_loss_mask(per_pair, 0.5)
    assert p_out.terms["inter_rank"].item() == pytest.approx(per_pair.mean().item(), rel=1e-5)
    assert r_out.terms["inter_rank"].item() == pytest.approx((per_pair * keep).sum().item() / 6, rel=1e-5)
    assert r_out.metrics["pairs/weight_mean"].item() == pytest.approx(0.5)


def test_storey_drops_the_rate_read_off_the_remembered_pvalues():
    """storey: the pairs with the largest losses are dropped at Storey's rate over the p-value memory (here 3 of 8
    remembered p-values above 0.5 -> rate 0.75), not at the mixture's; invalid pairs enter neither memory."""
    pw = weighting("loss.robust=storey", "loss.robust_warmup=0", "loss.robust_memory=64")
    pw.train()
    pw.remember(torch.zeros(MIN_FIT))  # enough losses to leave the start-up phase
    losses = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    pvalues = torch.tensor([0.1, 0.2, 0.9, 0.8, 0.3, 0.1, 0.6, 0.2, 0.99])
    valid = torch.tensor([True] * 8 + [False])
    w = pw(losses, valid, pvalues)
    assert pw.pmemory[:8].tolist() == pytest.approx(pvalues[:8].tolist()) and int(pw.pfilled) == 8
    assert pw.last["pairs/noisy_estimate"].item() == pytest.approx(0.75)
    assert w.tolist() == [1.0, 1.0] + [0.0] * 7  # ceil(0.25 * 8) = 2 smallest losses kept
    with pytest.raises(ValueError, match="storey"):
        pw(losses, valid)


def test_storey_pvalues_are_the_ranks_of_each_pairs_caption(tok):
    """tvdim with storey: the p-values remembered for a batch are the ranks of each image's caption among the batch's
    captions under the mean of the two views' cosine scores (recomputed here from the plain model's features)."""
    plain = build("tvdim", tok, "text.dropout=0")
    robust = build("tvdim", tok, "loss.robust=storey", "text.dropout=0", "loss.robust_warmup=5")
    robust.load_state_dict(plain.state_dict(), strict=False)
    assert "pair_weights.pmemory" in robust.state_dict()  # saved with the checkpoint
    assert "pair_weights.pmemory" not in build("tvdim", tok, "loss.robust=gmm").state_dict()  # old keys unchanged
    batch = make_batch(tok)
    robust.train()
    torch.manual_seed(1)
    robust(batch)
    with torch.no_grad():
        r1 = robust.image_encoder(torch.cat([batch["x1"], batch["x2"]]))[0].split(6)
        t = torch.nn.functional.normalize(robust.text_encoder(batch["ids"], batch["mask"]).sentence, dim=-1)
        s = sum(torch.nn.functional.normalize(x, dim=-1) @ t.T for x in r1) / 2
    expected = (s >= s.diagonal().unsqueeze(1)).sum(1).float() / 6
    assert int(robust.pair_weights.pfilled) == 6
    assert robust.pair_weights.pmemory[:6].tolist() == pytest.approx(expected.tolist())
