"""``tvdim data score-pairs`` on a planted corruption of the built-in data: every pair scored once, sorted most
suspicious first, joined with the corrupt-captions manifest, and the detector scored against it."""
from __future__ import annotations

import json

import pytest
import torch

import tvdim.score_pairs as audit
from tvdim.cli import main
from tvdim.config import DataConfig, load_config
from tvdim.data.formats.convert import to_wds
from tvdim.data.formats.corrupt import corrupt_captions
from tvdim.data.sources import build_source
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "text.dim=32", "text.layers=1", "text.vocab_size=200",
        "train.steps=1", "train.batch_size=8", "train.progress=false", "train.device=cpu"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """48 built-in pairs as shards, a copy with 30 % of captions swapped (manifest beside it), a 1-step clip run."""
    root = tmp_path_factory.mktemp("audit")
    to_wds(build_source(DataConfig(format="synthetic", synth_train=48), "train"), str(root / "clean"), "data", 100)
    res = corrupt_captions(str(root / "clean" / "data-000000.tar"), str(root / "noisy"), "wds", "swap", 0.3, 0)
    manifest = json.loads((root / "noisy" / "corrupted.json").read_text())
    cfg = load_config(overrides=TINY + ["train.method=clip", "data.format=wds",
                                        f"data.path={root}/noisy/data-000000.tar", f"train.out_dir={root}/run"])
    ckpt = pretrain(cfg).checkpoint
    return root, res, manifest, ckpt


def test_manifest_lists_exactly_the_changed_keys(planted):
    root, res, manifest, _ = planted
    assert manifest["key_kind"] == "key" and manifest["p"] == 0.3
    assert len(manifest["keys"]) == res["changed"] == manifest["changed"] > 0
    clean = {s.key: s.captions for s in map(build_source(DataConfig(format="wds", path=str(
        root / "clean" / "data-000000.tar")), "eval_train").__getitem__, range(48))}
    noisy = {s.key: s.captions for s in map(build_source(DataConfig(format="wds", path=str(
        root / "noisy" / "data-000000.tar")), "eval_train").__getitem__, range(48))}
    changed = {k for k in clean if clean[k] != noisy[k]}
    assert changed <= set(manifest["keys"])  # a swap can land on an identical caption, never the reverse
    assert len(changed) >= len(manifest["keys"]) - 2


def test_score_pairs_cli_writes_every_pair_sorted_and_joined(planted, tmp_path, capsys):
    root, _, manifest, ckpt = planted
    out = tmp_path / "scores.jsonl"
    assert main(["data", "score-pairs", str(ckpt), str(root / "noisy" / "data-000000.tar"), "--out", str(out),
                 "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == summary["pairs"] == 48 and len({r["key"] for r in rows}) == 48
    losses = [r["loss"] for r in rows]
    assert losses == sorted(losses, reverse=True)
    assert {r["key"] for r in rows if r["corrupted"]} == set(manifest["keys"])  # manifest found beside the shards
    det = summary["detection"]
    assert det["n_noisy"] == len(manifest["keys"]) and 0.0 <= det["auroc"] <= 1.0
    # CSV output too, and no silent overwrite
    assert main(["data", "score-pairs", str(ckpt), str(root / "noisy" / "data-000000.tar"), "--out", str(out),
                 "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err
    csv_out = tmp_path / "scores.csv"
    assert main(["data", "score-pairs", str(ckpt), str(root / "noisy" / "data-000000.tar"), "--out", str(csv_out),
                 "--quiet"]) == 0
    assert csv_out.read_text().splitlines()[0].startswith("key,caption_index,caption,agreement,loss")


def test_planted_mismatch_is_found(planted, tmp_path, monkeypatch):
    """With features that agree for clean pairs and disagree for the manifest's pairs, the detector puts every
    corrupted pair first (AUROC 1, precision 1): the scores, the ordering and the join use the same rows."""
    root, _, manifest, ckpt = planted
    real = audit._embed

    def planted_features(*a, **k):
        keys, rows, caps, img, txt, skipped = real(*a, **k)
        g = torch.Generator().manual_seed(0)
        img = torch.randn(len(keys), 16, generator=g)
        txt = img.clone()
        bad = [i for i, key in enumerate(keys) if key in set(manifest["keys"])]
        txt[bad] = torch.randn(len(bad), 16, generator=g)
        return keys, rows, caps, img, txt, skipped

    monkeypatch.setattr(audit, "_embed", planted_features)
    cfg = DataConfig(format="wds", path=str(root / "noisy" / "data-000000.tar"))
    summary = audit.score_pairs(str(ckpt), cfg, tmp_path / "s.jsonl", progress=False)
    assert summary["detection"]["auroc"] == 1.0 and summary["detection"]["precision_at_noise_rate"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    k = len(manifest["keys"])
    assert all(r["corrupted"] for r in rows[:k]) and not any(r["corrupted"] for r in rows[k:])
    assert all(r["clean_probability"] < 0.5 for r in rows[:k])
    # features that separate right from wrong pairs: no warning, and the agreement level says why
    assert "warning" not in summary and summary["agreement"]["separation"] > 2
    assert summary["agreement"]["i2t_R@10"] > summary["agreement"]["i2t_chance_R@10"]


def test_score_pairs_refuses_an_image_only_checkpoint(planted, tmp_path, capsys):
    root, _, _, _ = planted
    cfg = load_config(overrides=TINY + ["train.method=amdim", "data.format=wds",
                                        f"data.path={root}/noisy/data-000000.tar", f"train.out_dir={tmp_path}/a"])
    ckpt = pretrain(cfg).checkpoint
    assert main(["data", "score-pairs", str(ckpt), str(root / "noisy" / "data-000000.tar"), "--out",
                 str(tmp_path / "x.jsonl")]) == 2
    assert "no text encoder" in capsys.readouterr().err


def test_every_caption_of_every_image_is_scored(tmp_path, capsys):
    """A Karpathy-style image with several captions gives one row per caption (key, caption_index); the output
    folder is created; a checkpoint whose losses do not separate gets a warning with its agreement level."""
    from PIL import Image

    root = tmp_path / "data"
    (root / "img").mkdir(parents=True)
    colours = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    rows = ["filepath,title"]
    for i in range(12):
        name = list(colours)[i % 3]
        Image.new("RGB", (24, 24), colours[name]).save(root / "img" / f"{i}.png")
        rows += [f"img/{i}.png,a {name} square", f"img/{i}.png,something {name} number {i}"]
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    cfg = load_config(overrides=TINY + ["train.method=clip", "data.format=csv", f"data.path={root / 'pairs.csv'}",
                                        f"data.root={root}", f"train.out_dir={tmp_path / 'run'}"])
    ckpt = pretrain(cfg).checkpoint
    out = tmp_path / "new" / "folder" / "scores.jsonl"
    assert main(["data", "score-pairs", str(ckpt), str(root / "pairs.csv"), "--root", str(root), "--out", str(out),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["pairs"] == len(scored) == 24 and summary["images"] == 12
    assert sorted((r["key"].rsplit("/", 1)[-1], r["caption_index"]) for r in scored) == sorted(
        (f"{i}.png", j) for i in range(12) for j in range(2))
    by_key = {}
    for r in scored:
        by_key.setdefault(r["key"], set()).add(r["caption"])
    assert all(len(c) == 2 for c in by_key.values())  # both captions of each image, each once
    # one training step: the checkpoint cannot tell right from wrong, and says so
    level = summary["agreement"]
    assert level["i2t_R@10"] < 3 * level["i2t_chance_R@10"] and "treat the flags" in summary["warning"]
    assert "treat the flags" in captured.err


def test_a_weak_checkpoint_is_flagged_even_when_its_losses_split():
    """Two clean modes in the losses, but the checkpoint finds its own caption barely above chance: warned."""
    g = torch.Generator().manual_seed(0)
    n = 200
    img = torch.randn(n, 8, generator=g)
    txt = torch.randn(n, 8, generator=g)  # unrelated to the images: retrieval at chance
    group = torch.arange(n)
    loss = torch.cat([torch.full((150,), 0.1), torch.full((50,), 2.0)]) + 0.01 * torch.randn(n, generator=g)
    warning, level = audit.agreement_warning(img, txt, group, loss)
    assert level["separation"] > 2 and level["i2t_R@10"] < 3 * level["i2t_chance_R@10"]
    assert "barely matches its own pairs (under 3x chance)" in warning
    good, level = audit.agreement_warning(img, img.clone(), group, loss)  # its own pairs found: no warning
    assert good == "" and level["i2t_R@10"] == 1.0
