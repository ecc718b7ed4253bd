"""benchmarks/peers.py: every lightly peer and open_clip's trainer run for 2 steps on tiny data and their checkpoints are
scored by tvdim evaluate (skipped when the `peers` extra, lightly and open_clip_torch[training], is not installed)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightly", reason="lightly is not installed (pip install -e '.[peers]')")

from conftest import load_script  # noqa: E402

from tvdim.eval.evaluate import evaluate  # noqa: E402
from tvdim.loading import load_method  # noqa: E402

peers = load_script("peers")

DATA = ["data.synth_train=24", "data.synth_test=16", "eval.linear_epochs=1", "eval.mlp_epochs=1", "eval.few_shot=0",
        "eval.logreg_cs=[]"]


@pytest.mark.parametrize("peer,optimizer", [(p, "lightly") for p in peers.LIGHTLY] + [("lightly-vicreg", "lars")])
def test_peer_trains_and_is_evaluated_by_tvdim(peer, optimizer, tmp_path):
    import timm

    ckpt = peers.train_peer(peer, None, DATA, "resnet10t", 32, 4, 2, 0, tmp_path / peer, log_every=1,
                            optimizer=optimizer)
    loaded = load_method(ckpt)
    recorded = torch.load(ckpt, map_location="cpu", weights_only=False)["peer"]
    assert recorded["optimizer"] == optimizer
    assert recorded["lr"] == pytest.approx(peers.LR if optimizer == "lightly" else 0.2 * 4 / 256)
    fresh = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    trained = loaded.method.image_encoder.body.state_dict()
    # the peer's training moved the backbone (the checkpoint is not a fresh tvdim model)
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items() if v.is_floating_point())
    assert loaded.step == 2 and (tmp_path / peer / "metrics.jsonl").read_text().count("\n") == 2
    res = evaluate(loaded)
    assert res["feature_dim"] == 512 and set(res["tasks"]) == {"colour", "count", "shape"}


def test_a_cut_off_peer_run_continues_to_the_weights_of_an_uncut_one(tmp_path, monkeypatch, capsys):
    """BYOL: momentum copies, lightly's numpy-drawn blur / solarisation, and a data position past one epoch (the
    tiny set has 24 images; 4 steps of 8 draw 32)."""
    run = dict(peer="lightly-byol", cfg_path=None, overrides=DATA, backbone="resnet10t", size=32, batch=8, steps=4,
               seed=0, log_every=1, ckpt_every=2)
    whole = peers.train_peer(out=tmp_path / "whole", **run)
    calls = {"n": 0}
    real_loss = peers.PeerModel.loss

    def cut_at_step_4(self, *a):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the session ends during step 4, after step 3 was logged
        return real_loss(self, *a)

    monkeypatch.setattr(peers.PeerModel, "loss", cut_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        peers.train_peer(out=tmp_path / "cut", **run)
    monkeypatch.setattr(peers.PeerModel, "loss", real_loss)
    resumed = peers.train_peer(out=tmp_path / "cut", **run)
    assert "resuming" in capsys.readouterr().out
    a, b = (load_method(c).method.image_encoder.body.state_dict() for c in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # step 3 was redone from the step-2 checkpoint, and logged once
    # other settings in the same folder: not continued (an ablation's other views, another seed)
    peers.train_peer(out=tmp_path / "cut", **dict(run, views="tvdim"))
    assert "other settings" in capsys.readouterr().out
    peers.train_peer(out=tmp_path / "cut", **dict(run, seed=1))
    assert "other settings" in capsys.readouterr().out
    # a damaged state file: named, and the run starts afresh
    (tmp_path / "cut" / "checkpoints" / "peer_state.pt").write_bytes(b"not a checkpoint")
    peers.train_peer(out=tmp_path / "cut", **run)
    out = capsys.readouterr().out
    assert "peer_state.pt" in out and "starting afresh" in out and "resuming" not in out


def test_image_stream_resumes_at_its_position_and_skips_bad_samples():
    from tvdim.data.sample import Sample

    source = [Sample(key=str(i), image=i) if i != 3 else None for i in range(5)]  # index 3 is unreadable
    whole = peers.ImageStream(source, 7)
    drawn = [next(whole) for _ in range(9)]
    assert 3 not in drawn and sorted(drawn[:4]) == [0, 1, 2, 4]  # one permutation per epoch, without the bad one
    assert sorted(drawn[4:8]) == [0, 1, 2, 4] and drawn[:4] != drawn[4:8]  # reshuffled for the second epoch
    half = peers.ImageStream(source, 7)
    first = [next(half) for _ in range(6)]
    rest = peers.ImageStream(source, 7, half.position)
    assert first + [next(rest) for _ in range(3)] == drawn
    with pytest.raises(SystemExit, match="5 training samples in a row"):
        next(peers.ImageStream([None] * 5, 0))
    with pytest.raises(SystemExit, match="no samples"):
        peers.ImageStream([], 0)


def test_unknown_peer_is_refused():
    with pytest.raises(SystemExit):
        peers.main(["--peer", "nope", "--out", "x"])


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def _colour_shards(root, n_train: int = 24, n_test: int = 12):
    """WebDataset shards of coloured squares (``.jpg``, caption ``.txt``, class ``.cls``) and ``classes.json``."""
    import io
    import json
    import tarfile

    from PIL import Image

    def write(path, ids):
        with tarfile.open(path, "w") as tar:
            for i in ids:
                name = list(COLOURS)[i % 3]
                img = io.BytesIO()
                Image.new("RGB", (36, 36), COLOURS[name]).save(img, "JPEG")
                for ext, blob in (("jpg", img.getvalue()), ("txt", f"a {name} square, number {i}".encode()),
                                  ("cls", str(i % 3).encode())):
                    info = tarfile.TarInfo(f"k{i:04d}.{ext}")
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))

    write(root / "train-000000.tar", range(0, n_train // 2))
    write(root / "train-000001.tar", range(n_train // 2, n_train))
    write(root / "test-000000.tar", range(1000, 1000 + n_test))
    (root / "classes.json").write_text(json.dumps(list(COLOURS)))
    return str(root / "train-{000000..000001}.tar"), str(root / "test-000000.tar")


def test_open_clip_peer_trains_with_open_clips_own_trainer(tmp_path):
    pytest.importorskip("open_clip_train.data", reason="open_clip_torch[training] is not installed")
    import timm

    train, test = _colour_shards(tmp_path)
    data = ["data.format=wds", f"data.path={train}", f"data.eval_train_path={train}", f"data.eval_test_path={test}",
            "data.max_bad_fraction=0", "text.dim=32", "text.layers=1", "text.heads=2", "text.max_len=16", *DATA[2:]]
    out = tmp_path / "oc"
    ckpt = peers.train_open_clip(None, data, train, "resnet10t", 32, 4, 2, 0, out, warmup=1)
    log = (out / "open_clip_stdout.log").read_text()
    assert "Train Epoch: 0" in log and "Logit Scale" in log  # open_clip's own training loop ran
    oc_cfg = (out / "open_clip_model" / "open_clip_config.json").read_text()
    assert '"timm_model_name": "resnet10t"' in oc_cfg and '"width": 32' in oc_cfg and '"context_length": 16' in oc_cfg
    loaded = load_method(ckpt)
    oc_state = peers.open_clip_state(out / "open_clip" / "checkpoints" / "epoch_1.pt")
    body = loaded.method.image_encoder.body.state_dict()
    # the tvdim checkpoint holds exactly open_clip's trained image trunk, which training moved from its init
    assert all(torch.equal(body[k], oc_state[f"visual.trunk.{k}"]) for k in body)
    fresh = timm.create_model("resnet10t", pretrained=False, num_classes=0).state_dict()
    assert any(not torch.equal(v, body[k]) for k, v in fresh.items() if v.is_floating_point() and "running" not in k)
    res = evaluate(loaded)
    assert res["n_test"] == 12 and set(res["tasks"]) == {"label"}
    extra = peers.open_clip_eval(out, loaded.config.data, loaded.config.eval, 32)
    assert extra["retrieval"]["n_images"] == 12 and extra["retrieval"]["n_pairs"] == 12
    assert extra["retrieval"]["i2t_chance_R@1"] == pytest.approx(1 / 12)
    assert set(extra["zeroshot"]) == {"label"} and 0 <= extra["zeroshot"]["label"]["zeroshot"] <= 1


def test_a_cut_off_open_clip_run_continues_from_its_last_epoch(tmp_path, monkeypatch):
    pytest.importorskip("open_clip_train.data", reason="open_clip_torch[training] is not installed")
    import subprocess

    train, test = _colour_shards(tmp_path)
    data = ["data.format=wds", f"data.path={train}", f"data.eval_train_path={train}", f"data.eval_test_path={test}",
            "text.dim=32", "text.layers=1", "text.heads=2", "text.max_len=16", *DATA[2:]]
    out, real_run = tmp_path / "oc", subprocess.run
    log = out / "open_clip_stdout.log"

    def cut_after_epoch_1(cmd, **kw):  # the run is stopped once its first of two epochs is saved
        return real_run([*cmd[:cmd.index("--epochs") + 1], "1", *cmd[cmd.index("--epochs") + 2:]], **kw)

    monkeypatch.setattr(subprocess, "run", cut_after_epoch_1)
    with pytest.raises(SystemExit, match="open_clip_train failed"):
        peers.train_open_clip(None, data, train, "resnet10t", 32, 4, 4, 0, out, warmup=1, ckpt_every=2)
    assert (out / "open_clip" / "checkpoints" / "epoch_1.pt").exists()
    monkeypatch.setattr(subprocess, "run", real_run)
    before = log.read_text()
    peers.train_open_clip(None, data, train, "resnet10t", 32, 4, 4, 0, out, warmup=1, ckpt_every=2)
    again = log.read_text()[len(before):]
    assert before in log.read_text()  # the cut run's log is kept
    assert "=> resuming checkpoint" in again and "Train Epoch: 1" in again and "Train Epoch: 0" not in again
    assert [p.name for p in (out / "open_clip" / "checkpoints").glob("*.pt")] == ["epoch_2.pt"]
    # other arguments (here the seed) never continue that run: open_clip starts again from epoch 0
    peers.train_open_clip(None, data, train, "resnet10t", 32, 4, 4, 1, out, warmup=1, ckpt_every=2)
    third = log.read_text()[len(before) + len(again):]
    assert "resuming checkpoint" not in third and "Train Epoch: 0" in third and "Train Epoch: 1" in third


def test_open_clip_config_has_the_tvdim_rows_sizes():
    from tvdim.config import TextConfig
    from tvdim.data.transforms import MEAN, STD

    cfg = peers.open_clip_config("resnet18", 64, TextConfig(dim=128, layers=2, heads=4, max_len=32), 512)
    assert cfg["model_cfg"]["embed_dim"] == 512
    assert cfg["model_cfg"]["vision_cfg"] == {"timm_model_name": "resnet18", "timm_model_pretrained": False,
                                              "timm_pool": "", "timm_proj": "linear", "image_size": 64}
    assert cfg["model_cfg"]["text_cfg"] == {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4,
                                            "layers": 2}
    assert cfg["preprocess_cfg"] == {"mean": list(MEAN), "std": list(STD)}
    argv = peers.open_clip_argv("a.tar", Path("m"), Path("logs"), 64, 400, 3, 50, 0)
    value = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}
    assert "--dataset-resampled" in argv and value["--train-num-samples"] == "25600"  # steps x batch, one epoch
    assert value["--epochs"] == "1" and value["--batch-size"] == "64" and value["--warmup"] == "50"
    assert value["--seed"] == "3" and value["--model"] == "local-dir:m" and value["--device"] == "cpu"
    assert value["--resume"] == "latest" and "--delete-previous-checkpoint" in argv  # resumable, one checkpoint kept


def test_open_clip_run_is_split_into_epochs_of_ckpt_every_steps():
    assert peers.open_clip_epochs(1600, 400) == 4 and peers.open_clip_epochs(400, 400) == 1
    assert peers.open_clip_epochs(400, 0) == 1 and peers.open_clip_epochs(400, 300) == 1  # no cut or none that divides
    argv = peers.open_clip_argv("a.tar", Path("m"), Path("logs"), 64, 1600, 0, 50, 0, epochs=4)
    value = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}
    assert value["--epochs"] == "4" and value["--train-num-samples"] == str(400 * 64)  # 4 x 400 steps = 1,600
    with pytest.raises(ValueError, match="1600 steps do not split into 3"):
        peers.open_clip_argv("a.tar", Path("m"), Path("logs"), 64, 1600, 0, 50, 0, epochs=3)


def test_peer_optimizer_is_lightlys_sgd_unless_tvdims_recipe_is_asked_for():
    from tvdim.config import OptimConfig
    from tvdim.train.schedule import lr_factor

    optim = OptimConfig(lr=2e-4, betas=(0.8, 0.999), weight_decay=1e-5, warmup_steps=5, decay_at=0.8, decay_factor=0.2)
    w = torch.nn.Linear(3, 1)

    def lrs(name):
        opt, sched = peers.peer_optimizer(name, w, optim, 20, 64)
        seen = []
        for _ in range(20):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return opt, seen

    opt, seen = lrs("lightly")
    assert isinstance(opt, torch.optim.SGD) and seen == [peers.LR] * 20  # the example: constant lr 0.06
    assert opt.param_groups[0]["momentum"] == 0
    opt, seen = lrs("tvdim")
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["betas"] == (0.8, 0.999)
    assert opt.param_groups[0]["weight_decay"] == 1e-5
    assert seen == pytest.approx([2e-4 * lr_factor(s, 20, 5, 0.8, 0.2) for s in range(20)])  # warm-up, late decay
    assert seen[0] == pytest.approx(2e-4 / 5) and seen[-1] == pytest.approx(2e-4 * 0.2)
    with pytest.raises(SystemExit, match="adamw"):
        peers.peer_optimizer("adamw", w, optim, 20, 64)


def test_lars_is_lightlys_vicreg_benchmark_recipe():
    """LARS at 0.2 x batch / 256, momentum 0.9, weight decay 1e-6 on weights only (not on norms, biases or frozen
    momentum copies), a linear warm-up over 10 % of the steps, then cosine down to 1 % of the rate."""
    from lightly.utils.lars import LARS

    from tvdim.config import OptimConfig

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    model[2].requires_grad_(False)  # e.g. BYOL's momentum copy: never optimised
    steps, batch = 40, 128
    opt, sched = peers.peer_optimizer("lars", model, OptimConfig(), steps, batch)
    assert isinstance(opt, LARS) and opt.param_groups[0]["momentum"] == 0.9
    decay, no_decay = opt.param_groups
    assert [p.shape for p in decay["params"]] == [(4, 3)] and decay["weight_decay"] == 1e-6
    assert sorted(p.numel() for p in no_decay["params"]) == [4, 4, 4] and no_decay["weight_decay"] == 0.0
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    base, warm = 0.2 * batch / 256, 4
    want = [base * (s + 1) / warm if s < warm else
            base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - 1 - warm)))) for s in range(steps)]
    assert seen == pytest.approx(want)
    assert max(seen) == pytest.approx(0.1) and seen[-1] == pytest.approx(0.001)


def test_lightly_simclr_temperature_reaches_its_loss():
    import timm

    body = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    assert peers.PeerModel("lightly-simclr", body, 512).criterion.temperature == 0.5  # the example's NTXentLoss()
    model = peers.PeerModel("lightly-simclr", body, 512, temperature=0.1)
    assert model.criterion.temperature == 0.1
    z0, z1 = torch.randn(6, 128), torch.randn(6, 128)
    from lightly.loss import NTXentLoss

    assert model.criterion(z0, z1) == pytest.approx(NTXentLoss(temperature=0.1)(z0, z1).item())
    assert model.criterion(z0, z1) != pytest.approx(NTXentLoss()(z0, z1).item())


def test_tvdim_views_are_the_views_every_tvdim_row_trains_on():
    import random

    from PIL import Image

    from tvdim.data.transforms import TwoViews

    image = Image.effect_noise((80, 70), 60).convert("RGB")

    def draw(tf):
        random.seed(3)
        torch.manual_seed(3)
        return tf(image)

    ours = draw(TwoViews(64))
    theirs = draw(peers.view_transform("lightly-simclr", 64, "tvdim"))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))  # tvdim's views, draw for draw
    lightly_views = draw(peers.view_transform("lightly-simclr", 64))
    assert lightly_views[0].shape == ours[0].shape == (3, 64, 64)
    assert not torch.equal(lightly_views[0], ours[0])  # the default stays lightly's own transform
    with pytest.raises(ValueError, match="unknown views 'solo'"):
        peers.view_transform("lightly-simclr", 64, "solo")


def test_tvdim_head_is_tvdims_projection_head_and_lightlys_keeps_its_output_batchnorm():
    from tvdim.methods.contrastive import projection_head

    body = torch.nn.Identity()
    lightly_head = peers.PeerModel("lightly-simclr", body, 16).head
    assert isinstance(list(lightly_head.modules())[-1], torch.nn.BatchNorm1d)  # SimCLRProjectionHead's last layer
    head = peers.PeerModel("lightly-simclr", body, 16, head="tvdim").head
    ref = projection_head(16, 16, 128)
    assert [type(m) for m in head] == [type(m) for m in ref]
    assert {k: v.shape for k, v in head.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    for peer, kw in (("lightly-byol", {"head": "tvdim"}), ("lightly-byol", {"forward": "joint"}),
                     ("lightly-simclr", {"forward": "both"})):
        with pytest.raises(ValueError, match="is not one for"):
            peers.PeerModel(peer, body, 16, **kw)


@pytest.mark.parametrize("forward", peers.FORWARDS)
def test_joint_forward_puts_both_views_in_one_backbone_batch(forward):
    import copy

    torch.manual_seed(0)
    model = peers.PeerModel("lightly-simclr", torch.nn.BatchNorm1d(8), 8, forward=forward).train()
    x0, x1 = torch.randn(6, 8), torch.randn(6, 8) * 3 + 2  # views with other statistics
    ref = copy.deepcopy(model)
    if forward == "joint":  # batch statistics over all 12 rows, then each view's rows
        f0, f1 = ref.backbone(torch.cat([x0, x1])).split(6)
    else:
        f0, f1 = ref.backbone(x0), ref.backbone(x1)
    expected = ref.criterion(ref.head(f0), ref.head(f1))
    assert model.loss(x0, x1, 0.0).item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(model.backbone.running_mean, ref.backbone.running_mean)


def test_a_head_the_peer_has_not_stops_the_run_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match="peers: head 'tvdim' is not one for lightly-byol"):
        peers.train_peer("lightly-byol", None, DATA, "resnet10t", 32, 4, 2, 0, tmp_path / "p", head="tvdim")
    with pytest.raises(SystemExit, match="peers: unknown views 'solo'"):  # e.g. a misspelt peer.views= of a study row
        peers.train_peer("lightly-simclr", None, DATA, "resnet10t", 32, 4, 2, 0, tmp_path / "p", views="solo")
    assert not (tmp_path / "p" / "metrics.jsonl").exists()  # stopped before any training


def test_the_ablation_options_go_from_the_command_line_into_the_run(tmp_path):
    from tvdim.train.schedule import lr_factor

    out = tmp_path / "p"
    peers.main(["--peer", "lightly-simclr", "--backbone", "resnet10t", "--size", "32", "--batch", "4", "--steps", "2",
                "--out", str(out), "--temperature", "0.1", "--optimizer", "tvdim", "--views", "tvdim", "--head", "tvdim",
                "--forward", "joint", *DATA])
    peer = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["peer"]
    assert peer["optimizer"] == "tvdim" and peer["temperature"] == 0.1 and peer["lr"] == 2e-4
    assert (peer["views"], peer["head"], peer["forward"]) == ("tvdim", "tvdim", "joint")
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 2 and last["lr"] == pytest.approx(2e-4 * lr_factor(1, 2, 500, 0.8, 0.2))  # stepped
