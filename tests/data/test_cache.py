"""data.cache: decode once. A cache hit is the uncached sample bit for bit; a changed setting or file never reads a
stale cache; a damaged cache is reported and rebuilt; bad samples are counted once; every rank reads every shard
while building, and trains on a disjoint share."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from tvdim.config import load_config
from tvdim.data import cache
from tvdim.data.pipeline import BaseImage, PretrainDataset, ResumableSampler
from tvdim.data.sample import BadSample, Sample
from tvdim.data.sources import build_source
from tvdim.errors import ConfigError, DataError


def _cfg(tmp_path, *extra):
    return load_config(overrides=["data.synth_train=24", f"data.cache_dir={tmp_path / 'cache'}", *extra])


def _shards(fx, root, n_shards=3, per=5):
    for s in range(n_shards):
        samples = [(f"s{s}-{i}", {"jpg": fx.noisy_jpeg(40, seed=10 * s + i), "txt": f"caption {s} {i}",
                                  "cls": str(i % 2)}) for i in range(per)]
        fx.shard(root / f"train-{s:06d}.tar", samples)
    return str(root / ("train-{000000..%06d}.tar" % (n_shards - 1)))


@pytest.mark.parametrize("size", [32, 64])
def test_cache_hit_is_the_uncached_base_image_bit_for_bit(tmp_path, size):
    cfg = _cfg(tmp_path)
    src = build_source(cfg.data, "train", size)
    for mode in ("memory", "disk"):
        hit = cache.cached(src, cfg.data, size, False, mode)
        assert len(hit) == len(src) == 24 and hit.meta.side == (size if size <= 32 else 2 * size)
        base = BaseImage(size)
        for i in (0, 7, 23):
            s, c = src[i], hit[i]
            assert torch.equal(base(s.image)[0], base(c.image)[0])  # the device path's input
            assert (c.key, c.captions, c.labels) == (s.key, s.captions, s.labels)


def test_cached_views_at_32px_equal_the_uncached_views(tmp_path):
    """At 32 px the per-image path resizes to the base square first, so the cache changes nothing at all."""
    cfg = _cfg(tmp_path)
    src = build_source(cfg.data, "train", 32)
    plain = PretrainDataset(src, 32, seed=3)
    hit = PretrainDataset(cache.cached(src, cfg.data, 32, False, "memory"), 32, seed=3)
    for code in (0, 5, 24 + 5):  # epoch 0 and epoch 1 of index 5: other views, the same on both sides
        a, b = plain[code], hit[code]
        assert torch.equal(a.x1, b.x1) and torch.equal(a.x2, b.x2) and a.caption == b.caption


def test_a_cached_run_trains_exactly_as_an_uncached_one(tmp_path):
    from tvdim.train.checkpoint import load_checkpoint
    from tvdim.train.trainer import pretrain

    tiny = ["model.ndf=8", "model.n_rkhs=32", "model.n_depth=1", "train.batch_size=8", "data.synth_train=32",
            "train.method=amdim", "train.steps=3", "train.progress=false", f"data.cache_dir={tmp_path / 'c'}"]
    states = [load_checkpoint(pretrain(load_config(overrides=tiny + [f"data.cache={m}", f"train.out_dir={tmp_path / m}"]))
                              .checkpoint)["model"] for m in ("none", "disk")]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert "data cache: disk at " in (tmp_path / "disk" / "train.log").read_text()
    assert "data cache: none (set by data.cache)" in (tmp_path / "none" / "train.log").read_text()


def test_disk_cache_is_read_back_not_rebuilt(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    src = build_source(cfg.data, "train", 32)
    first = cache.cached(src, cfg.data, 32, False, "disk")
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert files == [f"{first.meta.fingerprint}.json", f"{first.meta.fingerprint}.npy"]  # no temporary left
    monkeypatch.setattr(cache, "build", lambda *a, **k: pytest.fail("a valid cache was rebuilt"))
    again = cache.cached(src, cfg.data, 32, False, "disk")
    assert isinstance(again.images, np.memmap) and np.array_equal(np.asarray(again.images), np.asarray(first.images))


def test_changed_settings_and_files_get_another_cache(fx, tmp_path):
    pattern = _shards(fx, tmp_path)
    base = ["data.format=wds", f"data.path={pattern}"]
    key = cache.fingerprint(load_config(overrides=base).data, 64, True)
    assert cache.fingerprint(load_config(overrides=base).data, 64, True) == key
    assert cache.fingerprint(load_config(overrides=base).data, 32, True) != key  # image size
    assert cache.fingerprint(load_config(overrides=base).data, 64, False) != key  # captions required or not
    assert cache.fingerprint(load_config(overrides=base + ["data.text_key=json:caption"]).data, 64, True) != key
    assert cache.fingerprint(load_config(overrides=base + ["data.max_image_pixels=1000"]).data, 64, True) != key
    # how the data is read or evaluated does not change what the cache holds
    same = ["data.workers=3", "data.shuffle_buffer=7", "data.augment=device", "data.eval_test_path=x.tar",
            "data.paired_fraction=0.5", "data.max_bad_fraction=0.5", f"data.cache_dir={tmp_path}"]
    assert cache.fingerprint(load_config(overrides=base + same).data, 64, True) == key
    shard = tmp_path / "train-000001.tar"
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))  # a shard rewritten
    assert cache.fingerprint(load_config(overrides=base).data, 64, True) != key


def test_changed_image_under_the_root_gets_another_cache(fx, tmp_path):
    table = fx.image_table(tmp_path, n=4)
    cfg = load_config(overrides=["data.format=csv", f"data.path={table}", f"data.root={tmp_path}"]).data
    key = cache.fingerprint(cfg, 32, True)
    img = next(p for p in tmp_path.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    img.write_bytes(fx.jpeg(16, (1, 2, 3)))
    assert cache.fingerprint(cfg, 32, True) != key


@pytest.mark.parametrize("damage", ["truncate", "append", "flip", "record"])
def test_damaged_cache_is_reported_and_rebuilt(tmp_path, caplog, damage):
    cfg = _cfg(tmp_path)
    src = build_source(cfg.data, "train", 32)
    good = np.asarray(cache.cached(src, cfg.data, 32, False, "disk").images).copy()
    npy = next((tmp_path / "cache").glob("*.npy"))
    if damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:-100])
    elif damage == "append":  # still a loadable array: only the size check catches it
        npy.write_bytes(npy.read_bytes() + b"\0" * 100)
    elif damage == "flip":
        raw = bytearray(npy.read_bytes())
        raw[-5] ^= 0xFF
        npy.write_bytes(bytes(raw))
    else:
        npy.with_suffix(".json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="tvdim.data"):
        again = cache.cached(src, cfg.data, 32, False, "disk")
    assert any("is damaged" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    if damage == "append":
        assert any("bytes, its record says" in r.getMessage() for r in caplog.records)
    assert np.array_equal(np.asarray(again.images), good)
    assert not isinstance(cache._load(npy, npy.with_suffix(".json")), str)  # the rebuilt one is valid


class _WithBad(torch.utils.data.Dataset):
    def __init__(self, src, bad):
        self.src, self.bad = src, set(bad)

    def __len__(self):
        return len(self.src)

    def __getitem__(self, i):
        return BadSample(f"k{i}", "truncated image") if i in self.bad else self.src[i]


def test_bad_samples_are_counted_once_when_the_cache_is_built(tmp_path):
    cfg = _cfg(tmp_path, "data.max_bad_fraction=0.2")
    src = _WithBad(build_source(cfg.data, "train", 32), [2, 9])
    hit = cache.cached(src, cfg.data, 32, False, "disk")
    assert len(hit) == 22 and "k2" not in hit.meta.keys
    assert hit.meta.bad["bad"] == 2 and hit.meta.bad["seen"] == 24
    # kept with the cache: a later run reads the counts without seeing the samples again
    meta = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert meta["bad"]["bad"] == 2 and meta["bad"]["first_reasons"][0] == "k2: truncated image"
    with pytest.raises(DataError, match="max_bad_fraction=0.05"):
        cache.build(_WithBad(build_source(cfg.data, "train", 32), [1, 2, 3]), 32, 0.05)


def test_building_reads_every_shard_whatever_the_rank(fx, tmp_path, monkeypatch):
    from tvdim.data.formats import wds

    pattern = _shards(fx, tmp_path)
    cfg = load_config(overrides=["data.format=wds", f"data.path={pattern}"]).data
    src = build_source(cfg, "train", 32)
    monkeypatch.setattr(wds, "dist_info", lambda: (1, 2, 0, 1))  # rank 1 of 2 would stream one shard of three
    assert len(list(src)) < 15
    hit = cache.build(src, 32, 0.0)[1]
    assert sorted(hit.keys) == sorted(f"s{s}-{i}" for s in range(3) for i in range(5))
    i = hit.keys.index("s2-3")
    assert hit.captions[i] == ["caption 2 3"] and hit.labels[i] == {"label": 1}


def test_ranks_train_on_disjoint_shares_of_the_cache(tmp_path):
    cfg = _cfg(tmp_path, "data.synth_train=40")
    src = build_source(cfg.data, "train", 32)
    cache.cached(src, cfg.data, 32, False, "disk")  # rank 0 builds
    rank1 = cache.cached(src, cfg.data, 32, False, "disk", is_main=False, barrier=lambda: None)
    shares = [set(c % 40 for c, _ in zip(ResumableSampler(40, 4, 0, r, 2), range(20))) for r in (0, 1)]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 40
    assert isinstance(rank1.images, np.memmap)


def test_non_main_rank_refuses_an_unreadable_cache(tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(OSError, match="cannot be read"):
        cache.cached(build_source(cfg.data, "train", 32), cfg.data, 32, False, "disk", is_main=False,
                     barrier=lambda: None)


def test_a_spawned_worker_maps_the_file_again(tmp_path):
    import pickle

    cfg = _cfg(tmp_path)
    hit = cache.cached(build_source(cfg.data, "train", 32), cfg.data, 32, False, "disk")
    blob = pickle.dumps(hit)
    assert len(blob) < hit.images.nbytes  # the pixels are not copied into the worker
    back = pickle.loads(blob)
    assert np.array_equal(np.asarray(back.images[5]), np.asarray(hit.images[5])) and back[5].key == hit[5].key


def test_auto_chooses_from_the_size_and_free_memory():
    gb = 10**9
    assert cache.choose_mode("auto", 1 * gb, 8 * gb, 100 * gb)[0] == "memory"
    assert cache.choose_mode("auto", 3 * gb, 8 * gb, 100 * gb)[0] == "disk"  # over a quarter of memory
    assert cache.choose_mode("auto", 1 * gb, 8 * gb, 100 * gb, world_size=2)[0] == "disk"  # one shared file
    assert cache.choose_mode("auto", 60 * gb, 8 * gb, 100 * gb)[0] == "none"
    assert cache.choose_mode("auto", None, 8 * gb, 100 * gb) == (
        "none", "the number of training samples is unknown (no sizes.json, no data.num_samples)")
    assert cache.choose_mode("memory", 60 * gb, 1, 1) == ("memory", "set by data.cache")
    with pytest.raises(ConfigError, match="data.cache"):
        cache.choose_mode("ram", 1, 1, 1)
    assert cache.cache_bytes(8734, 64) == 8734 * 3 * 128 * 128 and cache.cache_bytes(10, 32) == 10 * 3 * 32 * 32


def test_cached_source_yields_samples(tmp_path):
    hit = cache.CachedSource(np.zeros((2, 4, 4, 3), np.uint8),
                             cache.CacheMeta("f", 4, ["a", "b"], [["x"], []], [{"t": 1}, {}]))
    s = hit[0]
    assert isinstance(s, Sample) and s.image.size == (4, 4) and s.captions == ["x"] and s.labels == {"t": 1}
    s.captions.append("y")
    assert hit[0].captions == ["x"]  # the record is not shared with the caller
