"""Tests of the built-in synthetic captioned-shapes generator."""
from __future__ import annotations

import csv
import json
import pickle
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from tvdim.config import DataConfig
from tvdim.data.sample import Sample
from tvdim.data.synthetic import (COLOUR_WORDS, COLOURS, DISTRACTORS, SHAPE_WORDS, SHAPES, SIZE_WORDS,
                                  SyntheticCaptions, build_synthetic, write_synthetic)


def _mentions(text: str, words) -> bool:
    padded = " " + text.replace(",", " ").replace(".", " ").replace(";", " ") + " "
    return any(f" {w} " in padded for w in words)


def test_deterministic_and_seed_dependent():
    a, b = SyntheticCaptions(n=50, seed=3), SyntheticCaptions(n=50, seed=3)
    s1, s2, s3 = a[7], a[7], b[7]
    assert isinstance(s1, Sample) and s1.key == "synth-train-000007"
    assert s1.image.tobytes() == s2.image.tobytes() == s3.image.tobytes()
    assert s1.captions == s2.captions == s3.captions and s1.labels == s3.labels
    other = SyntheticCaptions(n=50, seed=4)
    assert sum(other[i].image.tobytes() != a[i].image.tobytes() for i in range(10)) == 10
    assert sum(other.caption(i) != a.caption(i) for i in range(10)) >= 9


def test_train_and_test_streams_differ():
    train, test, val = (SyntheticCaptions(split=s, n=20) for s in ("train", "test", "val"))
    for i in range(10):
        images = {d[i].image.tobytes() for d in (train, test, val)}
        assert len(images) == 3
    assert test[0].key == "synth-test-000000"


@pytest.mark.parametrize("size", [32, 64])
def test_image_size_mode_and_labels(size):
    ds = SyntheticCaptions(n=30, image_size=size, objects=4)
    assert len(ds) == 30
    assert ds.tasks == {"shape": list(SHAPES), "colour": list(COLOURS), "count": ["1", "2", "3", "4"]}
    for i in range(30):
        s = ds[i]
        assert s.image.mode == "RGB" and s.image.size == (size, size)
        assert set(s.labels) == set(ds.tasks)
        for task, k in s.labels.items():
            assert 0 <= k < len(ds.tasks[task])
        objs = ds.scene(i)
        assert s.labels == {"shape": objs[0].shape, "colour": objs[0].colour, "count": len(objs) - 1}
        assert all(o.s < objs[0].s for o in objs[1:])  # labels refer to the strictly largest object
        assert len(s.captions) == 1 and s.captions[0].strip()
    with pytest.raises(IndexError):
        ds[30]


def test_clean_caption_names_largest_object():
    ds = SyntheticCaptions(n=200)
    for i in range(200):
        text, objs = ds.caption(i), ds.scene(i)
        assert text == ds.clean_caption(i)
        big = objs[0]
        assert _mentions(text, COLOUR_WORDS[big.colour]), text
        assert _mentions(text, SHAPE_WORDS[big.shape]), text
        assert _mentions(text, SIZE_WORDS[big.size]), text
        # every object is mentioned: one size word per object
        assert sum(text.replace(",", " ").split().count(w) for ws in SIZE_WORDS for w in ws) == len(objs)


def test_swap_uses_other_samples_clean_captions():
    clean = SyntheticCaptions(n=300, seed=1)
    swapped = SyntheticCaptions(n=300, seed=1, swap=1.0)
    pool = {clean.caption(i): i for i in range(300)}
    for i in range(300):
        text = swapped.caption(i)
        assert text in pool and pool[text] != i
    half = SyntheticCaptions(n=300, seed=1, swap=0.5)
    changed = sum(half.caption(i) != clean.caption(i) for i in range(300))
    assert 100 < changed < 200
    # swapping never touches images or labels
    assert swapped[5].image.tobytes() == clean[5].image.tobytes() and swapped[5].labels == clean[5].labels


def test_corrupt_replaces_attribute_words():
    clean = SyntheticCaptions(n=300, seed=2)
    bad = SyntheticCaptions(n=300, seed=2, corrupt=1.0)
    singles = 0
    for i in range(300):
        assert bad.caption(i) != clean.caption(i)
        objs = clean.scene(i)
        if len(objs) == 1:  # the only object: its true colour / shape / size words must be gone
            singles += 1
            text = bad.caption(i)
            assert not _mentions(text, COLOUR_WORDS[objs[0].colour]), text
            assert not _mentions(text, SHAPE_WORDS[objs[0].shape]), text
            assert not _mentions(text, SIZE_WORDS[objs[0].size]), text
    assert singles > 30
    some = SyntheticCaptions(n=300, seed=2, corrupt=0.2)
    changed = sum(some.caption(i) != clean.caption(i) for i in range(300))
    assert 100 < changed < 300


def test_distract_appends_sentence():
    clean = SyntheticCaptions(n=100)
    noisy = SyntheticCaptions(n=100, distract=1.0)
    for i in range(100):
        text = noisy.caption(i)
        assert text.startswith(clean.caption(i))
        assert text[len(clean.caption(i)):].strip() in DISTRACTORS
    half = SyntheticCaptions(n=100, distract=0.5)
    assert 25 < sum(half.caption(i) != clean.caption(i) for i in range(100)) < 75


def test_captions_match_getitem_with_all_noise():
    ds = SyntheticCaptions(n=40, image_size=32, swap=0.3, corrupt=0.3, distract=0.3)
    assert ds.captions() == [ds[i].captions[0] for i in range(40)]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy[3].captions == ds[3].captions


def test_label_balance():
    ds = SyntheticCaptions(n=2000)
    scenes = [ds.scene(i) for i in range(2000)]
    for task, values, k in (("shape", [s[0].shape for s in scenes], len(SHAPES)),
                            ("colour", [s[0].colour for s in scenes], len(COLOURS)),
                            ("count", [len(s) - 1 for s in scenes], 3)):
        counts = Counter(values)
        assert len(counts) == k, task
        assert all(0.5 * 2000 / k <= c <= 2.0 * 2000 / k for c in counts.values()), (task, counts)


def test_colour_is_visible_in_pixels():
    ds = SyntheticCaptions(n=480, image_size=32)
    patch, whole, ys = [], [], []
    for i in range(480):
        s = ds[i]
        big = ds.scene(i)[0]
        arr = np.asarray(s.image, dtype=np.float32)
        cx, cy = int(big.x * 32), int(big.y * 32)
        patch.append(arr[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3).mean(0))
        whole.append(arr.reshape(-1, 3).mean(0))
        ys.append(s.labels["colour"])
    ys = np.array(ys)

    def nearest_centroid(x):
        x = np.stack(x)
        x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)  # chromaticity: ignore brightness
        tr, te = slice(0, 240), slice(240, 480)
        cents = np.stack([x[tr][ys[tr] == c].mean(0) for c in range(len(COLOURS))])
        pred = np.argmin(((x[te][:, None] - cents[None]) ** 2).sum(-1), axis=1)
        return float((pred == ys[te]).mean())

    chance = 1 / len(COLOURS)
    assert nearest_centroid(patch) > 0.9
    assert nearest_centroid(whole) > 1.5 * chance


def test_build_synthetic_noise_on_train_only():
    cfg = DataConfig(synth_train=30, synth_test=12, synth_seed=5, synth_objects=2, synth_swap=1.0,
                     synth_distract=1.0)
    train, test, val = (build_synthetic(cfg, s, 32) for s in ("train", "test", "val"))
    assert (len(train), len(test), len(val)) == (30, 12, 12)
    assert train.tasks["count"] == ["1", "2"] and train.image_size == 32 and train.seed == 5
    assert all(train.caption(i) != train.clean_caption(i) for i in range(30))
    assert all(test.caption(i) == test.clean_caption(i) for i in range(12))
    assert test.captions() != val.captions()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_write_synthetic(tmp_path, fmt):
    table = write_synthetic(tmp_path, n=6, split="test", seed=1, image_size=32, fmt=fmt)
    assert table.name == f"captions.{fmt}"
    if fmt == "jsonl":
        rows = [json.loads(line) for line in table.read_text().splitlines()]
    else:
        with table.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    ds = SyntheticCaptions(split="test", n=6, seed=1, image_size=32)
    for i, row in enumerate(rows):
        assert set(row) == {"filepath", "caption", "shape", "colour", "count"}
        with Image.open(tmp_path / row["filepath"]) as im:
            assert im.size == (32, 32) and im.convert("RGB").tobytes() == ds[i].image.tobytes()
        assert row["caption"] == ds.caption(i)
        assert row["shape"] == SHAPES[ds[i].labels["shape"]] and row["colour"] in COLOURS
    with pytest.raises(ValueError):
        write_synthetic(tmp_path, n=1, fmt="xml")
