"""WebDataset input that used to be misreported (issue 18, section 3: defects 5 and 6)."""
from __future__ import annotations

import json
import logging

import pytest

from tvdim.config import DataConfig, load_config
from tvdim.data.formats.wds import WdsDecoder, WdsStream, iter_tar_groups
from tvdim.data.formats.wds_eval import WdsIndexed
from tvdim.data.sample import BadSample, Sample
from tvdim.data.sources import caption_corpus, num_samples
from tvdim.data.tools import inspect_data
from tvdim.errors import DataError
from tvdim.train.trainer import pretrain

TINY = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "text.dim=32", "text.layers=1", "text.heads=2",
        "text.vocab_size=120", "train.batch_size=4", "train.progress=false", "train.device=cpu", "data.workers=0",
        "train.compile=off", "train.steps=1"]


# --- defect 5: data.format=wds pointed at a CSV --------------------------------------------------------------------

def test_wds_format_on_a_csv_says_not_a_tar_archive(tmp_path):
    table = tmp_path / "pairs.csv"
    table.write_text("filepath,title\na.jpg,a red square\nb.jpg,a blue circle\n")
    with pytest.raises(DataError, match="not a tar archive") as info:
        caption_corpus(DataConfig(format="wds", path=str(table)))
    assert str(table) in str(info.value)
    cfg = load_config(overrides=TINY + ["data.format=wds", f"data.path={table}", "train.method=tvdim",
                                        f"train.out_dir={tmp_path / 'run'}"])
    with pytest.raises(DataError, match="not a tar archive") as info:
        pretrain(cfg)  # before the fix: "the training data has no non-empty caption"
    assert "pairs.csv" in str(info.value) and "\n" not in str(info.value)


# --- defect 6: duplicate keys in a shard ----------------------------------------------------------------------------

def _dup_shard(fx, tmp_path):
    s = {k: {"jpg": fx.jpeg(), "txt": f"caption {k}"} for k in ("a", "b", "c")}
    path = fx.shard(tmp_path / "d-000000.tar", [("a", s["a"]), ("b", s["b"]), ("a", s["a"]), ("c", s["c"])])
    (tmp_path / "sizes.json").write_text(json.dumps({"d-000000.tar": 3}))
    return path


def test_duplicate_keys_are_counted_not_extra_samples(fx, tmp_path, caplog):
    path = _dup_shard(fx, tmp_path)
    with caplog.at_level(logging.WARNING, logger="tvdim.data"):
        items = list(WdsStream(str(path), WdsDecoder(), shuffle=False))
    good = [s.key for s in items if isinstance(s, Sample)]
    bad = [s for s in items if isinstance(s, BadSample)]
    assert good == ["a", "b", "c"]
    assert len(bad) == 1 and "duplicate key" in bad[0].reason and "a" in bad[0].key
    assert caplog.text.count("duplicate key") == 1  # warned once
    groups = [g for g in iter_tar_groups(str(path)) if isinstance(g, tuple)]
    assert [k for k, _ in groups] == ["a", "b", "c"]
    ds = WdsIndexed(str(path), WdsDecoder())
    assert [ds[i].key for i in range(len(ds)) if isinstance(ds[i], Sample)] == ["a", "b", "c"]
    assert sum(isinstance(ds[i], BadSample) and "duplicate key" in ds[i].reason for i in range(len(ds))) == 1
    (tmp_path / "sizes.json").unlink()
    assert num_samples(DataConfig(format="wds", path=str(path)), "train") == 3  # header scan: duplicates left out


def test_inspect_reports_duplicate_keys(fx, tmp_path):
    path = _dup_shard(fx, tmp_path)
    report = inspect_data(DataConfig(format="wds", path=str(path), shuffle_buffer=0))
    assert report["usable"] == 3 and report["duplicates"] == 1
    assert any("duplicate key" in line for line in report["unreadable"])
