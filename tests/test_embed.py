"""tvdim embed: features of a folder, a table, shards or a text file, with bad inputs skipped and counted."""
from __future__ import annotations

import io
import json
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from tvdim.api import embed_images, embed_texts, load_encoder, load_text_encoder
from tvdim.cli import main
from tvdim.config import load_config
from tvdim.hub import export_checkpoint
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=64",
        "data.synth_test=32", "text.dim=32", "text.layers=1", "text.vocab_size=200", "train.progress=false",
        "train.device=cpu", "train.steps=2"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    ck = {m: pretrain(load_config(overrides=TINY + [f"train.method={m}", f"train.out_dir={root / m}"])).checkpoint
          for m in ("amdim", "tvdim")}
    return {**ck, "export": export_checkpoint(ck["tvdim"], root / "export")}


def _img(seed, size=36, mode="RGB"):
    arr = np.random.default_rng(seed).integers(0, 255, (size, size + 3, 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def _png(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _load(out):
    return np.load(out), out.with_name(out.stem + ".keys.txt").read_text().splitlines()


def _run(*args):
    return main(["embed", *map(str, args), "--no-progress"])


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    _img(0).save(d / "b.png")
    _img(1, mode="L").save(d / "a.jpg")  # grayscale is converted
    _img(2).save(d / "sub" / "c.png")
    (d / "broken.jpg").write_bytes(b"not an image")
    (d / "notes.md").write_text("ignored: not an image extension")
    return d


def test_folder_matches_embed_images_and_skips_bad(models, folder, tmp_path, capsys):
    out = tmp_path / "f.npy"
    assert _run(models["export"], folder, "--out", out, "--batch-size", "2") == 0
    feats, keys = _load(out)
    assert keys == ["a.jpg", "b.png", "sub/c.png"]  # sorted relative paths; broken.jpg left out
    assert feats.dtype == np.float32 and feats.shape == (3, 32)
    ref = embed_images(load_encoder(models["tvdim"]), [Image.open(folder / k) for k in keys])
    assert np.allclose(feats, ref.numpy(), atol=1e-5)
    msg = capsys.readouterr().out
    assert "embedded 3 images (32 dims)" in msg and "skipped 1 unusable" in msg and "broken.jpg" in msg


def test_checkpoint_as_model_and_batch_size_do_not_change_features(models, folder, tmp_path):
    assert _run(models["export"], folder, "--out", tmp_path / "a.npy") == 0
    assert _run(models["tvdim"], folder, "--out", tmp_path / "b.npy", "--batch-size", "1") == 0
    (fa, ka), (fb, kb) = _load(tmp_path / "a.npy"), _load(tmp_path / "b.npy")
    assert ka == kb and np.allclose(fa, fb, atol=1e-5)


def test_table_with_root_and_missing_file(models, folder, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("path,title\nb.png,a red thing\nsub/c.png,blue\nmissing.png,gone\n")
    out = tmp_path / "t.npy"
    assert _run(models["export"], table, "--out", out, f"data.root={folder}", "data.image_key=path") == 0
    feats, keys = _load(out)
    assert keys == ["b.png", "sub/c.png"]
    ref = embed_images(load_encoder(models["tvdim"]), [Image.open(folder / k) for k in keys])
    assert np.allclose(feats, ref.numpy(), atol=1e-5)


def _shard(path, samples):
    with tarfile.open(path, "w") as tf:
        for key, files in samples:
            for ext, data in files.items():
                data = data.encode() if isinstance(data, str) else data
                ti = tarfile.TarInfo(f"{key}.{ext}")
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return path


def test_shards_images_and_captions(models, tmp_path):
    imgs = [_img(i) for i in range(3)]
    _shard(tmp_path / "s-000000.tar", [("k0", {"png": _png(imgs[0]), "txt": "a red circle"}),
                                       ("k1", {"png": b"broken", "txt": "   "})])
    _shard(tmp_path / "s-000001.tar", [("k2", {"png": _png(imgs[2]), "txt": "two blue squares"})])
    pattern = str(tmp_path / "s-{000000..000001}.tar")
    assert _run(models["export"], pattern, "--out", tmp_path / "i.npy") == 0
    feats, keys = _load(tmp_path / "i.npy")
    assert keys == ["k0", "k2"]
    ref = embed_images(load_encoder(models["tvdim"]), [imgs[0], imgs[2]])
    assert np.allclose(feats, ref.numpy(), atol=1e-5)
    assert _run(models["export"], pattern, "--out", tmp_path / "t.npy", "--text") == 0
    feats, keys = _load(tmp_path / "t.npy")
    assert keys == ["k0#0", "k2#0"]  # k1's whitespace caption is skipped (its broken image does not matter)
    ref = embed_texts(*load_text_encoder(models["tvdim"]), ["a red circle", "two blue squares"])
    assert np.allclose(feats, ref.numpy(), atol=1e-5)


def test_text_file_lines(models, tmp_path, capsys):
    txt = tmp_path / "caps.txt"
    txt.write_bytes(b"a red circle\n\nthree objects at the top\nbad byte \xff here\n")
    out = tmp_path / "c.npy"
    assert _run(models["export"], txt, "--text", "--out", out) == 0
    feats, keys = _load(out)
    assert keys == ["1", "3", "4"]  # line numbers; the empty line 2 is skipped and counted
    caps = ["a red circle", "three objects at the top", "bad byte \ufffd here"]
    ref = embed_texts(*load_text_encoder(models["tvdim"]), caps)
    assert feats.shape == (3, 32) and np.allclose(feats, ref.numpy(), atol=1e-5)
    assert "skipped 1 unusable" in capsys.readouterr().out


def test_table_captions_several_per_image(models, tmp_path):
    table = tmp_path / "t.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in [{"filepath": "x.png", "title": ["a red circle", "red"]},
                                                        {"filepath": "y.png", "title": ""},
                                                        {"filepath": "z.png", "title": "blue"}]) + "\n")
    out = tmp_path / "c.npy"
    assert _run(models["tvdim"], table, "--text", "--out", out) == 0
    feats, keys = _load(out)
    assert keys == ["x.png#0", "x.png#1", "z.png#0"]
    ref = embed_texts(*load_text_encoder(models["tvdim"]), ["a red circle", "red", "blue"])
    assert np.allclose(feats, ref.numpy(), atol=1e-5)


def test_parquet(models, folder, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "f.parquet"
    assert _run(models["export"], folder, "--out", out) == 0
    table = pq.read_table(out)
    assert table.column("key").to_pylist() == ["a.jpg", "b.png", "sub/c.png"]
    emb = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    _run(models["export"], folder, "--out", tmp_path / "f.npy")
    assert np.array_equal(emb, np.load(tmp_path / "f.npy"))


def test_errors_exit_2_with_one_line(models, folder, tmp_path, capsys, monkeypatch):
    assert _run(models["amdim"], tmp_path, "--text", "--out", tmp_path / "x.npy") == 2  # a folder is not text
    assert _run(models["amdim"], folder / "a.jpg", "--out", tmp_path / "x.npy") == 2  # one image: not a dataset
    txt = tmp_path / "c.txt"
    txt.write_text("a caption\n")
    assert _run(models["amdim"], txt, "--text", "--out", tmp_path / "x.npy") == 2
    assert "'amdim'" in capsys.readouterr().err
    assert _run(models["export"], folder, "--out", tmp_path / "x.csv") == 2
    empty = tmp_path / "blank.txt"
    empty.write_text("\n \n")
    assert _run(models["export"], empty, "--text", "--out", tmp_path / "x.npy") == 2
    assert _run(models["export"], tmp_path / "nothing-here", "--out", tmp_path / "x.npy") == 2
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert _run(models["export"], folder, "--out", tmp_path / "x.parquet") == 2
    err = capsys.readouterr().err
    assert "nothing to embed" in err and "nothing-here" in err and "pyarrow" in err and ".npy or .parquet" in err
    assert "Traceback" not in err and not (tmp_path / "x.npy").exists()


def test_gpu_free_device_choice(models, folder, tmp_path):
    if not torch.cuda.is_available():
        assert _run(models["export"], folder, "--out", tmp_path / "x.npy", "--device", "cuda") == 2
    assert _run(models["export"], folder, "--out", tmp_path / "y.npy", "--device", "auto") == 0


def _karpathy(tmp_path):
    """A Karpathy-style JSON: 3 train images (two captions each), 1 test image; images in a folder of their own."""
    imgs = tmp_path / "photos"
    imgs.mkdir()
    entries = []
    for i, split in enumerate(["train", "train", "restval", "test"]):
        _img(10 + i).save(imgs / f"{i}.png")
        entries.append({"filename": f"{i}.png", "split": split,
                        "sentences": [{"raw": f"photo {i} first"}, {"raw": f"photo {i} second"}]})
    path = tmp_path / "flickr_karpathy.json"
    path.write_text(json.dumps({"images": entries}))
    return path, imgs


def test_karpathy_json_images_and_captions_as_pretrain_reads_it(models, tmp_path, capsys):
    """The file the user trained on embeds as it is: its train images (with --root), every caption with --text
    (never the JSON as one line of text), --split test for the test entries; without the image folder, the error
    names the folder looked in and --root."""
    path, imgs = _karpathy(tmp_path)
    assert _run(models["export"], path, "--out", tmp_path / "x.npy") == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "--root" in err
    assert _run(models["export"], path, "--root", imgs, "--out", tmp_path / "img.npy") == 0
    feats, keys = _load(tmp_path / "img.npy")
    assert keys == ["0.png", "1.png", "2.png"] and feats.shape == (3, 32)
    assert np.allclose(feats, embed_images(load_encoder(models["export"]), [Image.open(imgs / f"{i}.png")
                                                                           for i in range(3)]).numpy(), atol=1e-5)
    assert _run(models["export"], path, "--root", imgs, "--split", "test", "--out", tmp_path / "test.npy") == 0
    assert _load(tmp_path / "test.npy")[1] == ["3.png"]
    assert _run(models["export"], path, "--text", "--out", tmp_path / "cap.npy") == 0  # no images needed
    feats, keys = _load(tmp_path / "cap.npy")
    assert keys == [f"{i}.png#{k}" for i in range(3) for k in range(2)]
    assert np.allclose(feats[1], embed_texts(*load_text_encoder(models["export"]), ["photo 0 second"]).numpy()[0],
                       atol=1e-5)


def test_coco_json_and_a_csv_without_root_name_the_folder(models, tmp_path, capsys):
    imgs = tmp_path / "images"
    imgs.mkdir()
    for i in range(3):
        _img(20 + i).save(imgs / f"{i}.png")
    coco = tmp_path / "ann" / "captions.json"
    coco.parent.mkdir()
    coco.write_text(json.dumps({"images": [{"id": i, "file_name": f"{i}.png"} for i in range(3)],
                                "annotations": [{"image_id": i, "caption": f"c{i}"} for i in range(3)]}))
    assert _run(models["export"], coco, "--root", imgs, "--out", tmp_path / "coco.npy") == 0
    assert _load(tmp_path / "coco.npy")[0].shape == (3, 32)
    table = tmp_path / "ann" / "pairs.csv"
    table.write_text("filepath,title\n" + "".join(f"{i}.png,c{i}\n" for i in range(3)))
    assert _run(models["export"], table, "--out", tmp_path / "t.npy") == 2
    err = capsys.readouterr().err
    assert "ann" in err and "--root" in err and "traceback" not in err.lower()
    assert _run(models["export"], table, "--root", imgs, "--out", tmp_path / "t.npy") == 0
