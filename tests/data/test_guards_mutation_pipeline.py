"""Guards from the sampled mutation run of issue 18 (tvdim.data): the per-sample transform a loader gets, the
crop scale of the augmentation, class names of a reader with a class list, caption corruption only on the
pretraining split, the synthetic shapes and the p95 of ``tvdim data inspect``."""
from __future__ import annotations

import math

from torchvision import transforms as T

from tvdim.config import DataConfig
from tvdim.data.classes import class_names
from tvdim.data.pipeline import BaseImage, pair_transform
from tvdim.data.synthetic import _unit_points, build_synthetic
from tvdim.data.tools import _dist
from tvdim.data.transforms import TwoViews, train_transform


def test_device_augmentation_gets_the_base_image_cpu_the_two_views():
    assert isinstance(pair_transform(64, "device"), BaseImage)
    assert isinstance(pair_transform(64, "cpu"), TwoViews)


def test_random_resized_crop_keeps_at_least_30_percent_of_the_image():
    crops = [t for t in train_transform(64).transforms if isinstance(t, T.RandomResizedCrop)]
    assert len(crops) == 1
    assert tuple(crops[0].scale) == (0.3, 1.0) and tuple(crops[0].ratio) == (0.7, 1.4)


def test_a_reader_with_a_class_list_names_the_label_task():
    class Reader:
        classes = ["cat", 7]

    assert class_names(Reader(), None, "train") == {"label": ["cat", "7"]}


def test_attribute_corruption_alone_is_applied_to_the_pretraining_split_only():
    cfg = DataConfig(format="synthetic", synth_train=12, synth_test=12, synth_seed=4, synth_corrupt=1.0)
    train, probe_train, test = (build_synthetic(cfg, s, 16) for s in ("train", "eval_train", "test"))
    assert (train.corrupt, probe_train.corrupt, test.corrupt) == (1.0, 0.0, 0.0)
    assert train.swap == train.distract == 0.0
    assert any(train.caption(i) != train.clean_caption(i) for i in range(12))


def test_the_circle_has_no_polygon_the_square_and_star_theirs():
    assert _unit_points(0) is None  # SHAPES[0] is the circle, drawn as an ellipse
    assert _unit_points(1) == [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)]
    star = _unit_points(5)
    assert len(star) == 10 and abs(star[0][0]) < 1e-12 and star[0][1] == -1.0  # the first tip points up
    assert [round(math.hypot(x, y), 9) for x, y in star] == [1.0, 0.5] * 5


def test_inspect_p95_is_the_value_at_95_percent_of_the_sorted_list():
    d = _dist([10, 1, 9, 2, 8, 3, 7, 4, 6, 5])
    assert d == {"min": 1, "median": 5.5, "p95": 10, "max": 10}
    assert _dist(list(range(100)))["p95"] == 95
    assert _dist([]) == {}
