"""tvdim data inspect | convert | corrupt-captions (functions and argparse wiring)."""
import argparse
import csv
import json
import tarfile

import pytest

from tvdim.config import DataConfig
from tvdim.data.formats.convert import to_wds, wds_export
from tvdim.data.formats.corrupt import corrupt_captions
from tvdim.data.formats.table import TableDataset
from tvdim.data.formats.wds import WdsDecoder
from tvdim.data.formats.wds_eval import WdsIndexed
from tvdim.data.tools import add_data_commands, guess_format, inspect_data
from tvdim.errors import DataError


def _parser():
    ap = argparse.ArgumentParser()
    add_data_commands(ap.add_subparsers(dest="cmd"))
    return ap


def _run(*argv):
    args = _parser().parse_args(["data", *argv])
    return args.func(args)


def _table(fx, tmp_path, n=7):
    path = fx.image_table(tmp_path / "src", n)
    with open(path, "a") as fh:  # a second caption for image 0 and one unreadable image
        fh.write("img/0.png,second caption,0\nimg/missing.png,gone,1\n")
    return path


def test_inspect(fx, tmp_path, capsys):
    path = _table(fx, tmp_path)
    r = inspect_data(DataConfig(format="csv", path=str(path), label_key="label"))
    assert r["items"] == 8 and r["usable"] == 7 and r["bad"] == 1 and r["captions"] == 8
    assert r["caption_tokens"]["max"] == 4 and r["width"]["median"] == 12 and r["classes"] == 2
    assert "img/missing.png: missing" in r["unreadable"][0]
    assert _run("inspect", str(path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["usable"] == 7
    assert _run("inspect", str(path), "--caption-key", "nope") == 2
    assert "missing column 'nope'" in capsys.readouterr().err


def test_csv_to_wds_to_csv_round_trip(fx, tmp_path):
    path = _table(fx, tmp_path)
    res = to_wds(TableDataset(path, "csv", label_key="label"), tmp_path / "shards", "rt", per_shard=3)
    assert res["samples"] == 7 and res["bad"] == 1 and res["shards"] == 3
    sizes = json.loads((tmp_path / "shards" / "sizes.json").read_text())
    assert sizes == {"rt-000000.tar": 3, "rt-000001.tar": 3, "rt-000002.tar": 1}
    ev = WdsIndexed(str(tmp_path / "shards"), WdsDecoder("json:captions"))
    assert len(ev) == 7 and ev[0].captions == ["a red square 0", "second caption"] and ev[1].labels == {"label": 1}
    out = wds_export(str(tmp_path / "shards" / "rt-{000000..000002}.tar"), tmp_path / "back", "csv")
    back = TableDataset(out["file"], "csv", label_key="label")
    orig = TableDataset(path, "csv", label_key="label")
    assert len(back) == out["samples"] == 7
    assert [back.captions(i) for i in range(7)] == [orig.captions(i) for i in range(7)]
    assert [back[i].labels for i in range(7)] == [orig[i].labels for i in range(7)]
    coco = wds_export(str(tmp_path / "shards"), tmp_path / "coco", "coco")
    data = json.loads(open(coco["file"]).read())
    assert len(data["images"]) == 7 and len(data["annotations"]) == 8


def test_convert_cli_and_folders(fx, tmp_path):
    folder = tmp_path / "capfolder"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(fx.jpeg())
        (folder / f"{i}.txt").write_text(f"line one {i}\nline two {i}\n")
    assert guess_format(str(folder)) == "folder"
    assert _run("convert", str(folder), "--out", str(tmp_path / "o1")) == 0
    ev = WdsIndexed(str(tmp_path / "o1"), WdsDecoder("json:captions"))
    assert len(ev) == 3 and ev[2].captions == ["line one 2", "line two 2"]
    import tarfile
    names = tarfile.open(tmp_path / "o1" / "data-000000.tar").getnames()
    assert "0.jpg" in names  # JPEG passthrough
    assert _run("convert", str(folder), "--out", str(tmp_path / "o1")) == 2  # refuses to mix into existing shards
    tree = tmp_path / "tree"
    for c in ("a", "b"):
        (tree / c).mkdir(parents=True)
        (tree / c / "x.png").write_bytes(fx.png())
    assert _run("convert", str(tree), "--out", str(tmp_path / "o2")) == 0
    ev = WdsIndexed(str(tmp_path / "o2"), WdsDecoder(require_text=False))
    assert [ev[i].labels["label"] for i in range(2)] == [0, 1]
    assert _run("convert", str(tmp_path / "o2"), "--to", "coco", "--out", str(tmp_path / "o3")) == 0


@pytest.mark.parametrize("mode", ["swap", "shuffle-words", "drop"])
def test_corrupt_wds(fx, tmp_path, mode):
    samples = fx.caption_samples(40, "k")
    fx.shard(tmp_path / "in" / "d-000000.tar", samples)
    (tmp_path / "in" / "sizes.json").write_text('{"d-000000.tar": 40}')
    (tmp_path / "in" / "classes.json").write_text('["a", "b"]')
    res = corrupt_captions(str(tmp_path / "in" / "d-000000.tar"), str(tmp_path / "out"), "wds", mode, 0.5, seed=1)
    assert res["samples"] == 40 and 10 < res["changed"] < 30
    assert (tmp_path / "out" / "sizes.json").is_file() and not list((tmp_path / "out").glob(".*tmp*"))
    assert (tmp_path / "out" / "classes.json").read_text() == '["a", "b"]'  # the online probe needs it
    ev = WdsIndexed(str(tmp_path / "out" / "d-000000.tar"), WdsDecoder(require_text=False))
    caps = [ev[i].captions for i in range(40)]
    orig = [[f"caption number {i}"] for i in range(40)]
    changed = sum(c != o for c, o in zip(caps, orig))
    if mode == "drop":
        assert changed == res["changed"] and caps.count([]) == changed
    elif mode == "swap":
        assert changed == res["changed"] and all(c in orig for c in caps)
    again = corrupt_captions(str(tmp_path / "in" / "d-000000.tar"), str(tmp_path / "out2"), "wds", mode, 0.5, seed=1)
    assert again["changed"] == res["changed"]
    with pytest.raises(DataError, match="never overwrites"):
        corrupt_captions(str(tmp_path / "in" / "d-000000.tar"), str(tmp_path / "in"), "wds", mode, 0.5)


def test_corrupt_table_cli(fx, tmp_path):
    path = fx.image_table(tmp_path, 30)
    out = tmp_path / "noisy.csv"
    assert _run("corrupt-captions", str(path), "--out", str(out), "--p", "0.5", "--seed", "3") == 0
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 30 and 5 < sum(r["title"] != f"a red square {i}" for i, r in enumerate(rows)) < 25
    assert _run("corrupt-captions", str(path), "--out", str(path)) == 2  # refuses to overwrite the input
    assert open(path).read().startswith("filepath,title,label")


def _error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_inspect_names_the_short_shard(fx, tmp_path, capsys):
    for s in range(2):
        fx.shard(tmp_path / f"d-{s:06d}.tar", fx.caption_samples(10, "k", start=10 * s))
    (tmp_path / "sizes.json").write_text(json.dumps({"d-000000.tar": 10, "d-000001.tar": 10}))
    raw = (tmp_path / "d-000001.tar").read_bytes()
    with tarfile.open(tmp_path / "d-000001.tar") as tf:  # cut where sample 17 starts, as a broken copy leaves it
        cut = next(m.offset for m in tf.getmembers() if m.name.startswith("k00017."))
    (tmp_path / "d-000001.tar").write_bytes(raw[:cut])
    pattern = str(tmp_path / "d-{000000..000001}.tar")
    r = inspect_data(DataConfig(format="wds", path=pattern))
    assert (r["items"], r["usable"], r["bad"]) == (20, 17, 3)
    assert any("d-000001.tar: short shard: 7 of 10 samples (sizes.json)" in line for line in r["unreadable"])
    assert _run("inspect", pattern) == 0
    assert "d-000001.tar: short shard: 7 of 10" in capsys.readouterr().out


def test_inspect_and_convert_fail_when_nothing_is_usable(fx, tmp_path, capsys):
    fx.shard(tmp_path / "z.tar", [(f"k{i}", {"jpg": b"", "txt": "cap"}) for i in range(3)])
    assert _run("inspect", str(tmp_path / "z.tar")) == 2
    err = _error_line(capsys)
    assert err.startswith("tvdim: error: no usable samples") and "zero-byte image" in err
    assert _run("convert", str(tmp_path / "z.tar"), "--to", "csv", "--out", str(tmp_path / "o")) == 2
    assert "no usable samples" in _error_line(capsys)
    missing = str(tmp_path / "nope-{000000..000003}.tar")
    for argv in (("inspect", missing), ("convert", missing, "--to", "csv", "--out", str(tmp_path / "o2"))):
        assert _run(*argv) == 2
        assert "no shard of" in _error_line(capsys)
    assert _run("inspect", str(tmp_path / "*.tar")) == 2
    assert "brace notation" in _error_line(capsys)


def test_table_format_on_a_tar_is_a_clear_error(fx, tmp_path, capsys):
    fx.shard(tmp_path / "d.tar", fx.caption_samples(3))
    assert _run("inspect", str(tmp_path / "d.tar"), "--format", "csv") == 2
    err = _error_line(capsys)
    assert "not a text table" in err and "\\x00" not in err and "\x00" not in err and len(err) < 300


def test_every_caption_survives_conversion_and_is_used_by_default(fx, tmp_path):
    path = _table(fx, tmp_path)  # image 0 has two captions
    to_wds(TableDataset(path, "csv"), tmp_path / "shards")
    from tvdim.data.formats.wds import WdsStream
    first = next(iter(WdsStream(str(tmp_path / "shards"), WdsDecoder(), shuffle=False)))  # data.text_key=txt
    assert first.captions == ["a red square 0", "second caption"]
    ev = WdsIndexed(str(tmp_path / "shards"), WdsDecoder())
    assert ev[0].captions == ["a red square 0", "second caption"]


def _karpathy(fx, tmp_path):
    images = tmp_path / "Flicker8k_Dataset"
    images.mkdir(parents=True)
    entries = []
    for i, split in enumerate(["train", "train", "train", "test", "test"]):
        (images / f"{i}.jpg").write_bytes(fx.jpeg(16, (i * 40, 0, 0)))
        sentences = [{"raw": f"cap {i} a"}, {"raw": f"cap {i} b"}]
        entries.append({"filename": f"{i}.jpg", "split": split, "sentences": sentences})
    ann = tmp_path / "annotations" / "dataset_flickr8k.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps({"images": entries}))
    return ann, images


def test_two_splits_into_one_folder_keep_both_sizes(fx, tmp_path):
    ann, images = _karpathy(fx, tmp_path)
    out = str(tmp_path / "shards")
    assert _run("convert", str(ann), "--root", str(images), "--out", out, "--prefix", "train") == 0
    assert _run("convert", str(ann), "--root", str(images), "--split", "test", "--out", out, "--prefix", "test") == 0
    assert json.loads((tmp_path / "shards" / "sizes.json").read_text()) == {"train-000000.tar": 3, "test-000000.tar": 2}


def test_karpathy_without_the_image_folder_says_where_it_looked(fx, tmp_path, capsys):
    ann, _ = _karpathy(fx, tmp_path)
    for argv in (("inspect", str(ann)), ("convert", str(ann), "--out", str(tmp_path / "o"))):
        assert _run(*argv) == 2
        err = _error_line(capsys)
        assert "annotations" in err and "0.jpg" in err and "--root" in err


def test_corrupt_captions_refuses_missing_or_broken_shards(fx, tmp_path, capsys):
    assert _run("corrupt-captions", str(tmp_path / "nope-{000000..000001}.tar"), "--out", str(tmp_path / "o")) == 2
    assert "no shard of" in _error_line(capsys)
    (tmp_path / "pairs.csv").write_text("filepath,title\na.jpg,a caption\n")
    assert _run("corrupt-captions", str(tmp_path / "pairs.csv"), "--format", "wds", "--out", str(tmp_path / "o")) == 2
    assert "pairs.csv" in _error_line(capsys)


def test_split_is_named_only_where_a_file_holds_several(fx, tmp_path, capsys):
    """A table or a shard is one split: inspect does not call it 'split train'; a Karpathy JSON holds several:
    inspect names the one read, and convert says which split it converted and how to convert the others."""
    path = _table(fx, tmp_path)
    assert _run("inspect", str(path)) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "(csv): 8 items" in first and "split train" not in first
    assert inspect_data(DataConfig(format="csv", path=str(path)))["split"] is None
    root = tmp_path / "k"
    (root / "img").mkdir(parents=True)
    for i in range(4):
        (root / "img" / f"{i}.jpg").write_bytes(fx.jpeg())
    data = {"images": [{"filepath": "img", "filename": f"{i}.jpg", "split": s, "sentences": [{"raw": f"cap {i}"}]}
                       for i, s in enumerate(["train", "train", "val", "test"])]}
    (root / "dataset.json").write_text(json.dumps(data))
    assert _run("inspect", str(root / "dataset.json"), "--format", "karpathy", "--split", "test") == 0
    assert "(karpathy, split test): 1 items" in capsys.readouterr().out
    assert _run("convert", str(root / "dataset.json"), "--format", "karpathy", "--out", str(tmp_path / "w")) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["samples"] == 2 and res["split"] == "train" and "--split SPLIT" in res["note"]
    assert "val, test" in res["note"]
