"""build_source / caption_corpus / num_samples / iter_samples dispatch."""
import json
import sys
import types

import pytest

from tvdim.config import DataConfig
from tvdim.data.formats.wds import WdsStream
from tvdim.data.formats.wds_eval import WdsIndexed
from tvdim.data.quality import SkipTracker
from tvdim.data.sources import FORMATS, build_source, caption_corpus, iter_samples, num_samples
from tvdim.errors import ConfigError, DataError


def test_unknown_format_lists_valid():
    with pytest.raises(ConfigError, match="valid formats: synthetic, csv"):
        build_source(DataConfig(format="parquet"))


def test_table_sources(fx, tmp_path):
    path = fx.image_table(tmp_path, 4, "jsonl")
    cfg = DataConfig(format="jsonl", path=str(path), root=str(tmp_path), label_key="label",
                     eval_test_path=str(path))
    assert len(build_source(cfg)) == 4 and num_samples(cfg) == 4 and num_samples(cfg, "test") == 4
    assert caption_corpus(cfg) == [f"a red square {i}" for i in range(4)]
    assert caption_corpus(cfg, max_n=2) == ["a red square 0", "a red square 1"]
    assert [s.labels["label"] for s in iter_samples(cfg, "eval_train")] == [0, 1, 0, 1]
    with pytest.raises(ConfigError, match="eval_test_path"):
        build_source(DataConfig(format="csv", path=str(path)), "test")


def test_wds_sources(fx, tmp_path):
    for s in range(2):
        fx.shard(tmp_path / f"d-{s:06d}.tar", fx.caption_samples(3, "k", start=3 * s))
    pattern = str(tmp_path / "d-{000000..000001}.tar")
    cfg = DataConfig(format="wds", path=pattern, eval_test_path=str(tmp_path / "d-000001.tar"), shuffle_buffer=2)
    assert isinstance(build_source(cfg, "train", 64), WdsStream)
    test = build_source(cfg, "test")
    assert isinstance(test, WdsIndexed) and len(test) == 3
    assert num_samples(cfg) == 6 and num_samples(cfg, "test") == 3  # header scan (no sizes.json)
    (tmp_path / "sizes.json").write_text(json.dumps({"d-000000.tar": 3, "d-000001.tar": 3}))
    assert num_samples(cfg) == 6
    assert sorted(caption_corpus(cfg)) == sorted(f"caption number {i}" for i in range(6))
    tracker = SkipTracker(0.0)
    assert len(list(iter_samples(cfg, "train", tracker=tracker))) == 6 and tracker.seen == 6


def test_wds_no_usable_samples(fx, tmp_path):
    fx.shard(tmp_path / "x.tar", [("a", {"jpg": b"", "txt": "hi"}), ("b", {"jpg": b"junk", "txt": "ho"})])
    cfg = DataConfig(format="wds", path=str(tmp_path / "x.tar"), max_bad_fraction=1.0)
    with pytest.raises(DataError, match="no usable samples in .*x.tar"):
        list(iter_samples(cfg))


def test_labelled_sources(fx, tmp_path):
    root = fx.cifar10(tmp_path / "c", per_batch=2)
    cfg = DataConfig(format="cifar10", path=str(root))
    assert len(build_source(cfg, "eval_train")) == 10 and len(build_source(cfg, "test")) == 2
    assert caption_corpus(cfg) == []


def test_synthetic_is_delegated(monkeypatch):
    mod = types.ModuleType("tvdim.data.synthetic")
    mod.build_synthetic = lambda cfg, split, image_size: ("synthetic", split, image_size)
    monkeypatch.setitem(sys.modules, "tvdim.data.synthetic", mod)
    assert build_source(DataConfig(), "test", 32) == ("synthetic", "test", 32)
    assert "stl10" in FORMATS
