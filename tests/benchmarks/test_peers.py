"""benchmarks/peers.py: every lightly peer trains for 2 steps on tiny built-in data and its checkpoint is scored by
tvdim evaluate (skipped when lightly, the `peers` extra, is not installed)."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightly", reason="lightly is not installed (pip install -e '.[peers]')")

from conftest import load_script  # noqa: E402

from tvdim.eval.evaluate import evaluate  # noqa: E402
from tvdim.loading import load_method  # noqa: E402

peers = load_script("peers")

DATA = ["data.synth_train=24", "data.synth_test=16", "eval.linear_epochs=1", "eval.mlp_epochs=1", "eval.few_shot=0",
        "eval.logreg_cs=[]"]


@pytest.mark.parametrize("peer", peers.PEERS)
def test_peer_trains_and_is_evaluated_by_tvdim(peer, tmp_path):
    import timm

    ckpt = peers.train_peer(peer, None, DATA, "resnet10t", 32, 4, 2, 0, tmp_path / peer, log_every=1)
    loaded = load_method(ckpt)
    fresh = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    trained = loaded.method.image_encoder.body.state_dict()
    # the peer's training moved the backbone (the checkpoint is not a fresh tvdim model)
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items() if v.is_floating_point())
    assert loaded.step == 2 and (tmp_path / peer / "metrics.jsonl").read_text().count("\n") == 2
    res = evaluate(loaded)
    assert res["feature_dim"] == 512 and set(res["tasks"]) == {"colour", "count", "shape"}


def test_unknown_peer_is_refused():
    with pytest.raises(SystemExit):
        peers.main(["--peer", "nope", "--out", "x"])
