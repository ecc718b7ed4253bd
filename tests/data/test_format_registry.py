"""The data-format registry: a format added by one decorated builder is read by build_source (and so by
pretraining and evaluation), gets the split's path, the caption rule and the classes.json count; the built-in
names are all registered; unknown names are errors listing them."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from tvdim.config import DataConfig
from tvdim.data.classes import label_tasks
from tvdim.data.formats.registry import FORMATS, Build, file_formats, register_format
from tvdim.data.sample import BadSample, Sample
from tvdim.data.sources import build_source, iter_samples
from tvdim.errors import ConfigError


class LinesSet:
    """A toy format: one ``caption|label`` per line, a grey image per line."""

    def __init__(self, b: Build) -> None:
        self.build = b
        self.rows = [line.split("|") for line in open(b.path).read().splitlines()]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample | BadSample:
        cap, label = self.rows[i]
        if self.build.n_classes and int(label) >= self.build.n_classes:
            return BadSample(f"row{i}", "label outside classes.json")
        if self.build.need_text and not cap:
            return BadSample(f"row{i}", "no caption")
        return Sample(f"row{i}", Image.new("RGB", (8, 8), (i * 20, 0, 0)), [cap] if cap else [],
                      {"label": int(label)})

    def label_values(self):
        return [int(label) for _, label in self.rows]


@pytest.fixture
def lines_format():
    register_format("lines-test", files=True)(LinesSet)
    yield "lines-test"
    del FORMATS["lines-test"]


def test_every_built_in_format_is_registered():
    assert set(FORMATS) >= {"synthetic", "csv", "tsv", "jsonl", "coco", "karpathy", "wds", "imagefolder",
                            "cifar10", "cifar100", "stl10"}
    assert set(file_formats()) == {"csv", "tsv", "jsonl", "coco", "karpathy", "wds"}
    assert [n for n, f in FORMATS.items() if f.test_from_path] == ["cifar10", "cifar100", "stl10"]


def test_a_registered_format_is_read_with_the_split_path_caption_rule_and_classes(lines_format, tmp_path):
    (tmp_path / "train.txt").write_text("a red circle|0\n|1\na blue square|2\n")
    (tmp_path / "test.txt").write_text("x|1\n")
    (tmp_path / "classes.json").write_text(json.dumps(["circle", "square"]))  # label 2 is outside
    cfg = DataConfig(format=lines_format, path=str(tmp_path / "train.txt"),
                     eval_test_path=str(tmp_path / "test.txt"), max_bad_fraction=1.0)
    train = build_source(cfg, "train")
    assert isinstance(train, LinesSet) and train.build.path == cfg.path and train.build.need_text
    assert train.build.n_classes == 2
    assert [s.key for s in iter_samples(cfg, "train")] == ["row0"]  # no caption, label outside: skipped
    assert build_source(cfg, "eval_train", require_text=False).build.need_text is False
    assert build_source(cfg, "test").build.path == str(tmp_path / "test.txt")
    assert label_tasks(train, cfg, "train") == {"label": ["circle", "square"]}


def test_unknown_format_is_a_config_error_listing_the_registered_ones(lines_format):
    with pytest.raises(ConfigError, match="unknown data.format 'nope'; valid formats: synthetic, .*lines-test"):
        build_source(DataConfig(format="nope", path="x"))


def test_registering_a_format_twice_is_refused():
    with pytest.raises(ValueError, match="'csv' is registered twice"):
        register_format("csv")(lambda b: None)


def test_image_readers_get_the_decoding_settings(tmp_path):
    """build_source passes the training size (JPEG draft decoding) and the pixel limit to a table reader."""
    import numpy as np

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(
        tmp_path / "big.jpg", quality=90)
    (tmp_path / "pairs.csv").write_text("filepath,title\nbig.jpg,a big picture\n")
    cfg = DataConfig(format="csv", path=str(tmp_path / "pairs.csv"), root=str(tmp_path))
    assert build_source(cfg, "train", image_size=None)[0].image.size == (512, 512)
    drafted = build_source(cfg, "train", image_size=32)[0].image.size
    assert 32 <= min(drafted) < 512  # decoded at a reduced DCT scale, still at least the training size
    small = DataConfig(format="csv", path=str(tmp_path / "pairs.csv"), root=str(tmp_path), max_image_pixels=1000)
    assert isinstance(build_source(small, "train")[0], BadSample)  # over the pixel limit: skipped, not decoded
