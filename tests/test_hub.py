"""Export a checkpoint (tvdim export) and load it back (tvdim.from_pretrained, the huggingface_hub mixin)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import tvdim
from tvdim.api import embed_images, embed_texts, load_encoder, load_method, load_text_encoder
from tvdim.cli import main
from tvdim.config import load_config
from tvdim.errors import CheckpointError, TvdimError
from tvdim.hub import TvdimModel, export_checkpoint, from_pretrained
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "train.device=cpu", "train.steps=2"]
CAPS = ["a small red circle", "a large blue square at the bottom", "", "three objects"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    return {m: pretrain(load_config(overrides=TINY + [f"train.method={m}", f"train.out_dir={root / m}"])).checkpoint
            for m in ("amdim", "tvdim")}


def _images(n, size=40):
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (size, size + 5, 3), dtype=np.uint8)) for _ in range(n)]


def test_export_layout_and_config(runs, tmp_path):
    out = export_checkpoint(runs["tvdim"], tmp_path / "ex")
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json", "tokenizer.json", "README.md"}
    conf = json.loads((out / "config.json").read_text())
    assert conf["method"] == "tvdim" and conf["step"] == 2 and conf["tvdim_format"] == "tvdim-export-v1"
    assert conf["image"]["image_size"] == 32 and conf["image"]["n_rkhs"] == 32 and conf["image"]["ndf"] == 8
    assert conf["normalization"]["mean"] == [0.485, 0.456, 0.406] and conf["normalization"]["crop"] == 32
    assert conf["text"]["architecture"] == "transformer" and conf["text"]["dim"] == 32
    assert conf["training"]["train"]["method"] == "tvdim"
    from safetensors.torch import load_file

    keys = set(load_file(str(out / "model.safetensors")))
    assert any(k.startswith("image_encoder.") for k in keys) and any(k.startswith("text_encoder.") for k in keys)
    assert not any(k.startswith("probes.") for k in keys)  # only the encoders leave the run


@pytest.mark.parametrize("method", ["amdim", "tvdim"])
def test_round_trip_features_equal_the_checkpoints(runs, tmp_path, method):
    out = export_checkpoint(runs[method], tmp_path / method)
    model = tvdim.from_pretrained(out)
    assert isinstance(model, TvdimModel) and not model.training
    imgs = _images(5)
    ref = embed_images(load_encoder(runs[method]), imgs)
    assert torch.equal(model.encode_images(imgs), ref)
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(model(x), load_method(runs[method]).method.image_encoder(x).r1)
    if method == "tvdim":
        enc, tok = load_text_encoder(runs[method])
        assert torch.equal(model.encode_texts(CAPS), embed_texts(enc, tok, CAPS))
        assert model.tokenizer.to_json() == tok.to_json()
    else:
        assert model.text_encoder is None and model.tokenizer is None
        with pytest.raises(CheckpointError, match="amdim"):
            model.encode_texts(CAPS)


def test_hub_mixin_save_pretrained_round_trip(runs, tmp_path):
    model = from_pretrained(export_checkpoint(runs["tvdim"], tmp_path / "a"))
    model.save_pretrained(tmp_path / "b")  # the huggingface_hub convention, as push_to_hub uses it
    again = TvdimModel.from_pretrained(tmp_path / "b")
    assert json.loads((tmp_path / "a" / "config.json").read_text()) == json.loads((tmp_path / "b" / "config.json").read_text())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(again(x), model(x))
    assert torch.equal(again.encode_texts(CAPS), model.encode_texts(CAPS))


def test_loaders_accept_an_export_folder(runs, tmp_path):
    out = export_checkpoint(runs["tvdim"], tmp_path / "ex")
    enc = load_encoder(out)
    assert not any(p.requires_grad for p in enc.parameters())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(enc(x).r1, load_encoder(runs["tvdim"])(x).r1)
    tenc, tok = load_text_encoder(out)
    assert torch.equal(embed_texts(tenc, tok, CAPS), embed_texts(*load_text_encoder(runs["tvdim"]), CAPS))


def test_refuses_non_empty_folder_unless_overwrite(runs, tmp_path):
    out = tmp_path / "ex"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(TvdimError, match="--overwrite"):
        export_checkpoint(runs["amdim"], out)
    assert not (out / "model.safetensors").exists()
    export_checkpoint(runs["tvdim"], out, overwrite=True)
    export_checkpoint(runs["amdim"], out, overwrite=True)  # an image-only export over a text one
    assert (out / "notes.txt").read_text() == "mine"  # files that are not the export's are left alone
    assert not (out / "tokenizer.json").exists()  # no stale tokenizer from the previous export
    assert from_pretrained(out).method == "amdim"


def test_model_card_has_config_and_results(runs, tmp_path):
    run = runs["tvdim"].parent.parent
    card = (export_checkpoint(runs["tvdim"], tmp_path / "none") / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: tvdim" in card
    assert "No evaluation results" in card and "method: tvdim" in card and "ndf: 8" in card
    assert main(["evaluate", str(runs["tvdim"]), "--out", str(run / "eval"), "eval.linear_epochs=1",
                 "eval.mlp_epochs=1", "eval.knn_k=3"]) == 0
    out = export_checkpoint(runs["tvdim"], tmp_path / "ev")
    card = (out / "README.md").read_text()
    res = json.loads((run / "eval" / "results.json").read_text())
    lin = 100 * res["tasks"]["colour"]["linear"]
    assert f"{lin:.1f}" in card and "No evaluation results" not in card
    assert json.loads((out / "results.json").read_text()) == res
    assert from_pretrained(out).results == res
    shutil.rmtree(run / "eval")


def test_results_of_another_checkpoint_are_not_quoted(runs, tmp_path):
    run = runs["amdim"].parent.parent
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "results.json").write_text(json.dumps({"method": "amdim", "step": 999, "tasks": {}}))
    card = (export_checkpoint(runs["amdim"], tmp_path / "ex") / "README.md").read_text()
    assert "No evaluation results" in card
    shutil.rmtree(run / "eval")


def test_not_an_export_is_checkpoint_error(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(CheckpointError, match="not a tvdim export"):
        from_pretrained(tmp_path / "d")
    (tmp_path / "d" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "d" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="tvdim_format"):
        from_pretrained(tmp_path / "d")


def test_mismatched_weights_are_checkpoint_error(runs, tmp_path):
    out = export_checkpoint(runs["amdim"], tmp_path / "ex")
    conf = json.loads((out / "config.json").read_text())
    conf["image"]["ndf"] = 16
    (out / "config.json").write_text(json.dumps(conf))
    with pytest.raises(CheckpointError, match="do not match"):
        from_pretrained(out)


def test_cli_export(runs, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["export", str(runs["tvdim"]), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out and (out / "model.safetensors").is_file()
    assert main(["export", str(runs["tvdim"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "tvdim: error:" in err and "--overwrite" in err and "Traceback" not in err
    assert main(["export", str(runs["amdim"]), "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["method"] == "amdim"
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_pretrained_text_tower_exports_without_its_folder(tiny_bert, tmp_path):
    folder = shutil.copytree(tiny_bert, tmp_path / "bert")
    cfg = load_config(overrides=TINY + ["train.method=tvdim", f"text.pretrained={folder}", "text.max_len=16",
                                        f"train.out_dir={tmp_path / 'run'}"])
    ckpt = pretrain(cfg).checkpoint
    enc, tok = load_text_encoder(ckpt)
    ref = embed_texts(enc, tok, CAPS)
    out = export_checkpoint(ckpt, tmp_path / "ex")
    shutil.rmtree(folder)  # the export carries the architecture, weights and tokenizer
    model = from_pretrained(out)
    assert json.loads((out / "config.json").read_text())["text"]["architecture"] == "huggingface"
    assert torch.equal(model.encode_texts(CAPS), ref)
    assert model.tokenizer.pad_id == 3
