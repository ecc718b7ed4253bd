"""Labels that the class names do not cover, malformed classes.json files and labels the trainer did not find
(issue 18, section 3: defects 1-3)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tvdim.config import DataConfig, load_config
from tvdim.data.formats.wds import WdsDecoder
from tvdim.data.sample import BadSample, Sample
from tvdim.data.sources import build_source
from tvdim.data.tools import inspect_data
from tvdim.errors import DataError
from tvdim.train.trainer import pretrain, source_tasks

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "text.dim=32", "text.layers=1", "text.heads=2",
        "text.vocab_size=120", "train.batch_size=4", "train.progress=false", "optim.warmup_steps=1",
        "train.log_every=1", "train.device=cpu", "data.workers=0", "train.compile=off"]


def _labelled_shard(fx, root: Path, labels: list[int]) -> Path:
    samples = [(f"s{i:03d}", {"jpg": fx.jpeg(16, (i * 20 % 255, 40, 90)), "txt": f"a photo number {i}",
                              "cls": str(y)}) for i, y in enumerate(labels)]
    fx.shard(root / "train-000000.tar", samples)
    (root / "sizes.json").write_text(json.dumps({"train-000000.tar": len(labels)}))
    return root / "train-000000.tar"


def _wds(root: Path) -> DataConfig:
    return DataConfig(format="wds", path=str(root / "train-000000.tar"), shuffle_buffer=0)


# --- defect 1: a .cls label outside classes.json ---------------------------------------------------------------

def test_label_outside_classes_json_is_a_counted_bad_sample(fx, tmp_path):
    dec = WdsDecoder(num_classes=3)
    out = dec("shards/train-000000.tar", "s001", {"jpg": fx.jpeg(), "txt": b"a cat", "cls": b"7"})
    assert isinstance(out, BadSample)
    assert "train-000000.tar/s001" in out.key and "7" in out.reason and "classes.json" in out.reason
    ok = dec("shards/train-000000.tar", "s002", {"jpg": fx.jpeg(), "txt": b"a cat", "cls": b"2"})
    assert isinstance(ok, Sample) and ok.labels == {"label": 2}


def test_inspect_flags_label_outside_classes_json(fx, tmp_path):
    _labelled_shard(fx, tmp_path, [0, 1, 2, 7, 1, 0])
    (tmp_path / "classes.json").write_text(json.dumps(["red", "green", "blue"]))
    report = inspect_data(_wds(tmp_path))
    assert report["bad"] == 1 and report["usable"] == 5
    assert any("s003" in line and "7" in line for line in report["unreadable"])


@pytest.mark.parametrize("method", ["amdim", "tvdim"])
def test_pretrain_skips_label_outside_classes_json(fx, tmp_path, method):
    root = tmp_path / "wds"
    _labelled_shard(fx, root, [7] + [i % 3 for i in range(40)])
    (root / "classes.json").write_text(json.dumps(["red", "green", "blue"]))
    cfg = load_config(overrides=TINY + ["data.format=wds", f"data.path={root}/train-000000.tar",
                                        "data.shuffle_buffer=0", f"train.method={method}", "train.steps=2",
                                        f"train.out_dir={tmp_path / 'run'}"])
    res = pretrain(cfg)  # before the fix: IndexError: Target 7 is out of bounds
    assert res.step == 2
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    quality = next(r["data_quality"] for r in lines if "data_quality" in r)
    assert quality["bad"] == 1 and "label 7" in quality["first_reasons"][0]


# --- defect 2: malformed classes.json ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["not json [", '"squarecircle"', '{"square": 0, "circle": 1}', "[]", "[1, 2]",
                                  b"\xff\xfe[\"a\"]"])
def test_malformed_classes_json_is_one_line_error(fx, tmp_path, text):
    _labelled_shard(fx, tmp_path, [0, 1])
    f = tmp_path / "classes.json"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    cfg = _wds(tmp_path)
    with pytest.raises(DataError, match="classes.json") as info:
        source_tasks(build_source(cfg, "train"), cfg)
    assert str(f) in str(info.value) and "\n" not in str(info.value)


def test_pretrain_rejects_string_classes_json(fx, tmp_path):
    root = tmp_path / "wds"
    _labelled_shard(fx, root, [0, 1] * 10)
    (root / "classes.json").write_text('"squarecircle"')
    cfg = load_config(overrides=TINY + ["data.format=wds", f"data.path={root}/train-000000.tar",
                                        "train.method=amdim", "train.steps=1", f"train.out_dir={tmp_path / 'run'}"])
    with pytest.raises(DataError, match="JSON list of class names"):
        pretrain(cfg)


def test_one_shared_class_names_function():
    from tvdim.data import classes
    from tvdim.eval import zeroshot

    assert zeroshot.class_names is classes.class_names


# --- defect 3: labels of tables, COCO and shards without classes.json --------------------------------------------

def _table(tmp_path: Path, labels: list[int], classes: list[str] | None = None) -> DataConfig:
    (tmp_path / "img").mkdir(exist_ok=True)
    rows = ["filepath,title,label"]
    for i, y in enumerate(labels):
        Image.new("RGB", (16, 16), (y * 80 % 255, 30, 30)).save(tmp_path / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,a picture number {i},{y}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    if classes is not None:
        (tmp_path / "classes.json").write_text(json.dumps(classes))
    return DataConfig(format="csv", path=str(tmp_path / "t.csv"), label_key="label")


def test_source_tasks_of_labelled_table_counts_classes(tmp_path):
    cfg = _table(tmp_path, [0, 2, 1, 2])
    assert source_tasks(build_source(cfg, "train"), cfg) == {"label": ["0", "1", "2"]}


def test_source_tasks_of_labelled_table_uses_classes_json(tmp_path):
    cfg = _table(tmp_path, [0, 1, 1], ["cat", "dog"])
    assert source_tasks(build_source(cfg, "train"), cfg) == {"label": ["cat", "dog"]}


def test_source_tasks_of_unlabelled_table_is_empty(tmp_path):
    cfg = _table(tmp_path, [0, 1])
    cfg.label_key = ""
    assert source_tasks(build_source(cfg, "train"), cfg) == {}


def test_source_tasks_of_coco_labels(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "b.png")
    (tmp_path / "c.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "label": 0}, {"id": 2, "file_name": "b.png", "label": 3}],
        "annotations": [{"image_id": 1, "caption": "x"}, {"image_id": 2, "caption": "y"}]}))
    cfg = DataConfig(format="coco", path=str(tmp_path / "c.json"))
    assert source_tasks(build_source(cfg, "train"), cfg) == {"label": ["0", "1", "2", "3"]}


def test_source_tasks_of_shards_without_classes_json(fx, tmp_path):
    _labelled_shard(fx, tmp_path, [0, 4, 1])
    cfg = _wds(tmp_path)
    assert source_tasks(build_source(cfg, "train"), cfg) == {"label": ["0", "1", "2", "3", "4"]}


def test_supervised_pretraining_on_labelled_table(tmp_path):
    _table(tmp_path, [i % 3 for i in range(12)])
    cfg = load_config(overrides=TINY + ["data.format=csv", f"data.path={tmp_path / 't.csv'}", "data.label_key=label",
                                        "train.method=supervised", "train.steps=1",
                                        f"train.out_dir={tmp_path / 'run'}"])
    res = pretrain(cfg)  # before the fix: "method 'supervised' needs labelled training data"
    from tvdim.train.checkpoint import load_checkpoint

    assert load_checkpoint(res.checkpoint)["tasks"] == {"label": ["0", "1", "2"]}
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "probe_acc/label" in lines[0]  # the online probe runs on the table's labels
