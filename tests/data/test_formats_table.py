"""CSV / TSV / JSONL reader, incl. bad images, bad captions and missing columns."""
import json

import pytest

from tvdim.data.formats.table import TableDataset
from tvdim.data.sample import BadSample, Sample
from tvdim.errors import DataError


@pytest.mark.parametrize("fmt,sep", [("csv", ","), ("tsv", "\t"), ("jsonl", ",")])
def test_reads_all_formats(fx, tmp_path, fmt, sep):
    path = fx.image_table(tmp_path, 5, fmt, sep)
    ds = TableDataset(path, fmt, root=tmp_path, label_key="label")
    assert len(ds) == 5
    s = ds[3]
    assert isinstance(s, Sample) and s.key == "img/3.png" and s.captions == ["a red square 3"]
    assert s.labels == {"label": 1} and s.image.mode == "RGB"
    assert list(ds.iter_captions())[0] == "a red square 0"


def test_custom_separator_and_columns(fx, tmp_path):
    (tmp_path / "a.png").write_bytes(fx.png())
    p = tmp_path / "t.csv"
    p.write_text(f"img;text\n{tmp_path / 'a.png'};absolute path works\n")
    ds = TableDataset(p, "csv", image_key="img", caption_key="text", separator=";")
    assert ds[0].captions == ["absolute path works"]


def test_grouped_rows_and_json_lists(fx, tmp_path):
    (tmp_path / "a.png").write_bytes(fx.png())
    (tmp_path / "b.png").write_bytes(fx.png())
    p = tmp_path / "t.csv"
    p.write_text('filepath,title\na.png,first\nb.png,"[""x"", ""y""]"\na.png,second\n')
    ds = TableDataset(p, "csv")
    assert len(ds) == 2 and ds[0].captions == ["first", "second"] and ds[1].captions == ["x", "y"]
    j = tmp_path / "t.jsonl"
    j.write_text(json.dumps({"filepath": "a.png", "title": ["p", " ", "q"]}) + "\n")
    assert TableDataset(j, "jsonl")[0].captions == ["p", "q"]


def test_missing_column_names_file_and_columns(fx, tmp_path):
    path = fx.image_table(tmp_path, 2)
    with pytest.raises(DataError) as err:
        TableDataset(path, "csv", caption_key="caption")
    msg = str(err.value)
    assert str(path) in msg and "'caption'" in msg and "filepath, title, label" in msg
    with pytest.raises(DataError, match="separator"):
        TableDataset(path, "csv", separator="\t")


def test_bad_images_and_captions(fx, tmp_path):
    for name, data in {**fx.broken_images(), **fx.odd_images(), "ok.png": fx.png()}.items():
        (tmp_path / name).write_bytes(data)
    rows = [("truncated.jpg", "t"), ("zero.jpg", "z"), ("text.jpg", "x"), ("missing.jpg", "m"),
            ("cmyk.jpg", "c"), ("gray.png", "g"), ("palette.png", "p"), ("rgba.png", "r"), ("sixteen.png", "s"),
            ("ok.png", "   "), ("html.png", "h")]
    p = tmp_path / "t.csv"
    body = "".join(f"{a},{b}\n" for a, b in rows)
    p.write_bytes(b"filepath,title\n" + body.encode() + b"ok2.png,caf\xe9 latin-1\n" + b"ok3.png," + b"w " * 900 + b"\n")
    (tmp_path / "ok2.png").write_bytes(fx.png())
    (tmp_path / "ok3.png").write_bytes(fx.png())
    ds = TableDataset(p, "csv")
    out = {ds.items[i][0]: ds[i] for i in range(len(ds))}
    for name, word in [("truncated.jpg", "truncated"), ("zero.jpg", "zero-byte"), ("text.jpg", "not an image"),
                       ("missing.jpg", "missing"), ("ok.png", "no non-empty caption"), ("html.png", "not an image")]:
        assert isinstance(out[name], BadSample) and out[name].key == name and word in out[name].reason, out[name]
    for name in ("cmyk.jpg", "gray.png", "palette.png", "rgba.png", "sixteen.png"):
        assert isinstance(out[name], Sample) and out[name].image.mode == "RGB"
    assert out["ok2.png"].captions == ["caf\ufffd latin-1"]
    assert len(out["ok3.png"].captions[0]) <= 1000
    img_only = TableDataset(p, "csv", require_caption=False)
    assert img_only[[r[0] for r in img_only.items].index("ok.png")].captions == []


def test_empty_table_and_bad_label(fx, tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("filepath,title\n")
    with pytest.raises(DataError, match="no samples"):
        TableDataset(p, "csv")
    (tmp_path / "a.png").write_bytes(fx.png())
    p.write_text("filepath,title,label\na.png,cap,cat\n")
    bad = TableDataset(p, "csv", label_key="label")[0]
    assert isinstance(bad, BadSample) and "label" in bad.reason
    j = tmp_path / "bad.jsonl"
    j.write_text('{"filepath": "a.png", "title": "x"}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        TableDataset(j, "jsonl")
