"""WebDataset readers: streaming (shuffle, worker split, resampled), ordered eval reader, broken shards."""
import json

import pytest
import torch
from torch.utils.data import DataLoader

from tvdim.data.formats.wds import WdsDecoder, WdsStream, expand_urls, shard_sizes
from tvdim.data.formats.wds_eval import WdsIndexed
from tvdim.data.quality import SkipTracker, filter_bad
from tvdim.data.sample import BadSample, Sample
from tvdim.errors import DataError


def _shards(fx, folder, n_shards=4, per=5, text_ext="txt", sizes=True):
    for s in range(n_shards):
        fx.shard(folder / f"train-{s:06d}.tar", fx.caption_samples(per, "k", text_ext, start=s * per))
    if sizes:
        (folder / "sizes.json").write_text(json.dumps({f"train-{s:06d}.tar": per for s in range(n_shards)}))
    return str(folder / ("train-{000000..%06d}.tar" % (n_shards - 1)))


def _keys(items):
    return [s.key for s in items if isinstance(s, Sample)]


def test_stream_reads_everything_once(fx, tmp_path):
    pattern = _shards(fx, tmp_path)
    assert len(expand_urls(pattern)) == 4 and sum(shard_sizes(expand_urls(pattern)).values()) == 20
    ds = WdsStream(pattern, WdsDecoder(), shuffle=False)
    items = list(ds)
    assert _keys(items) == [f"k{i:05d}" for i in range(20)] and len(ds) == 20
    s = items[4]
    assert s.captions == ["caption number 4"] and s.labels == {"label": 1} and s.image.mode == "RGB"


def test_shuffle_is_seeded_and_complete(fx, tmp_path):
    ds = WdsStream(_shards(fx, tmp_path), WdsDecoder(), shuffle_buffer=8, seed=3)
    a, b = _keys(ds), _keys(ds)
    assert a == b and sorted(a) == [f"k{i:05d}" for i in range(20)] and a != sorted(a)
    ds.set_epoch(1)
    assert _keys(ds) != a


@pytest.mark.parametrize("n_shards", [4, 1])
def test_worker_split_no_duplicates(fx, tmp_path, n_shards):
    pattern = _shards(fx, tmp_path, n_shards=n_shards, per=20 // n_shards)
    ds = WdsStream(pattern, WdsDecoder(), shuffle_buffer=4)
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda x: x)
    keys = _keys(loader)
    assert sorted(keys) == [f"k{i:05d}" for i in range(20)]


def test_rank_split(fx, tmp_path, monkeypatch):
    pattern = _shards(fx, tmp_path)
    got = []
    for rank in range(2):
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda r=rank: r)
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
        got.append(set(_keys(WdsStream(pattern, WdsDecoder(), shuffle=False))))
    assert len(got[0]) == 10 and len(got[1]) == 10 and not got[0] & got[1]


def test_resampled_fixed_length(fx, tmp_path):
    ds = WdsStream(_shards(fx, tmp_path), WdsDecoder(), resampled=True, num_samples=37, shuffle_buffer=4)
    assert len(list(ds)) == 37
    with pytest.raises(DataError, match="num_samples"):
        WdsStream(_shards(fx, tmp_path / "nosizes", sizes=False), WdsDecoder(), resampled=True)


def test_stats_json_counts(fx, tmp_path):
    fx.shard(tmp_path / "00000.tar", fx.caption_samples(3))
    (tmp_path / "00000_stats.json").write_text(json.dumps({"successes": 3, "count": 4}))
    assert shard_sizes([str(tmp_path / "00000.tar")]) == {str(tmp_path / "00000.tar"): 3}


def test_json_captions_list(fx, tmp_path):
    pattern = _shards(fx, tmp_path, 1, 3, text_ext="json")
    s = next(iter(WdsStream(pattern, WdsDecoder("json:captions"), shuffle=False)))
    assert s.captions == ["caption number 0", "another caption 0"]


def test_wrong_text_key_raises_at_once(fx, tmp_path):
    pattern = _shards(fx, tmp_path, 1, 20, text_ext="json")
    with pytest.raises(DataError) as err:
        next(iter(WdsStream(pattern, WdsDecoder("txt"), shuffle=False)))
    msg = str(err.value)
    assert "'txt'" in msg and "first 16" in msg and "json:captions" in msg and "cls" in msg
    with pytest.raises(DataError, match="json:caption'.*json:captions"):
        list(WdsStream(pattern, WdsDecoder("json:caption"), shuffle=False))


def test_bad_samples_in_shard(fx, tmp_path):
    samples = fx.caption_samples(6, "k")
    samples[1][1]["jpg"] = fx.broken_images()["truncated.jpg"]
    samples[2][1]["txt"] = "   "
    del samples[3][1]["txt"]
    samples[4][1]["png"] = samples[4][1].pop("jpg") and fx.broken_images()["zero.jpg"]
    samples[5][1]["txt"] = b"caf\xe9"
    fx.shard(tmp_path / "a.tar", samples)
    items = list(WdsStream(str(tmp_path / "a.tar"), WdsDecoder(), shuffle=False))
    bad = {b.key: b.reason for b in items if isinstance(b, BadSample)}
    assert set(bad) == {"a.tar/k00001", "a.tar/k00002", "a.tar/k00003", "a.tar/k00004"}
    assert "truncated" in bad["a.tar/k00001"] and "empty" in bad["a.tar/k00002"]
    assert "no text" in bad["a.tar/k00003"] and "zero-byte" in bad["a.tar/k00004"]
    assert items[-1].captions == ["caf\ufffd"]


def test_empty_and_truncated_shards_counted(fx, tmp_path):
    fx.shard(tmp_path / "s-000000.tar", fx.caption_samples(5))
    fx.shard(tmp_path / "s-000001.tar", [])
    (tmp_path / "s-000002.tar").write_bytes(b"")
    full = fx.shard(tmp_path / "full.tar", fx.caption_samples(10, "t", start=100)).read_bytes()
    (tmp_path / "s-000003.tar").write_bytes(full[: int(len(full) * 0.6)])
    pattern = str(tmp_path / "s-{000000..000003}.tar")
    tracker = SkipTracker(0.9, min_seen=1)
    good = list(filter_bad(WdsStream(pattern, WdsDecoder(), shuffle=False), tracker))
    reasons = " | ".join(tracker.reasons)
    assert len(good) >= 10 and tracker.n_bad == 3
    assert "s-000001.tar: empty shard" in reasons and "s-000002.tar: empty shard" in reasons
    assert "s-000003.tar: truncated" in reasons
    ev = WdsIndexed(pattern, WdsDecoder(require_text=False))
    bad = [e for e in (ev[i] for i in range(len(ev))) if isinstance(e, BadSample)]
    assert len(bad) == 3 and any("truncated" in b.reason for b in bad)


def test_indexed_eval_reader_is_ordered_and_complete(fx, tmp_path):
    pattern = _shards(fx, tmp_path, 3, 4)
    ds = WdsIndexed(pattern, WdsDecoder(require_text=False))
    assert len(ds) == 12 and [ds[i].key for i in range(12)] == [f"k{i:05d}" for i in range(12)]
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda x: x)
    assert [s.key for s in loader] == [f"k{i:05d}" for i in range(12)]
    assert list(ds.iter_captions())[:2] == ["caption number 0", "caption number 1"]
    fx.shard(tmp_path / "nolabels.tar", [(k, {"jpg": f["jpg"], "cls": f["cls"]}) for k, f in fx.caption_samples(2)])
    s = WdsIndexed(str(tmp_path / "nolabels.tar"), WdsDecoder(require_text=False))[0]
    assert s.captions == [] and s.labels == {"label": 0}


def test_missing_shards(tmp_path):
    with pytest.raises(DataError, match="no shard"):
        WdsStream(str(tmp_path / "x-{0..3}.tar"), WdsDecoder())
