"""WebDataset readers: streaming (shuffle, worker split, resampled), ordered eval reader, broken shards."""
import json
import tarfile

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
        next(iter(WdsStream(pattern, WdsDecoder("text"), shuffle=False)))
    msg = str(err.value)
    assert "'text'" in msg and "first 16" in msg and "json:captions" in msg and "cls" in msg
    # the default txt also takes a captions list from KEY.json (what tvdim data convert writes)
    assert next(iter(WdsStream(pattern, WdsDecoder("txt"), shuffle=False))).captions[1] == "another caption 0"
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


def _damaged(fx, tmp_path, how, sizes=True, n=10, at=7):
    """A shard of ``n`` samples that loses samples ``at``.. (cut at a member boundary, or a garbled header)."""
    path = fx.shard(tmp_path / "d-000001.tar", fx.caption_samples(n, "k"))
    fx.shard(tmp_path / "d-000000.tar", fx.caption_samples(n, "j"))
    raw = bytearray(path.read_bytes())
    with tarfile.open(path) as tf:
        offset = next(m.offset for m in tf.getmembers() if m.name.startswith(f"k{at:05d}."))
    if how == "cut":
        raw = raw[:offset]
    else:
        raw[offset:offset + 12] = b"garbled!" * 1 + b"\x01\x02\x03\x04"
    path.write_bytes(bytes(raw))
    if sizes:
        (tmp_path / "sizes.json").write_text(json.dumps({"d-000000.tar": n, "d-000001.tar": n}))
    return str(tmp_path / "d-{000000..000001}.tar")


@pytest.mark.parametrize("how", ["cut", "garbled"])
def test_damaged_shard_losses_are_counted_against_sizes_json(fx, tmp_path, how):
    pattern = _damaged(fx, tmp_path, how)
    tracker = SkipTracker(1.0, min_seen=1)
    good = list(filter_bad(WdsStream(pattern, WdsDecoder(), shuffle=False), tracker))
    assert len(good) == 17 and tracker.n_bad == 3 and tracker.seen == 20
    (reason,) = tracker.reasons
    assert reason.startswith(str(tmp_path / "d-000001.tar")) and "7 of 10 samples (sizes.json)" in reason
    ev = WdsIndexed(pattern, WdsDecoder(require_text=False))
    bad = [b for b in (ev[i] for i in range(len(ev))) if isinstance(b, BadSample)]
    assert len(ev) - len(bad) == 17 and sum(b.count for b in bad) == 3
    assert "7 of 10 samples (sizes.json)" in bad[0].reason


@pytest.mark.parametrize("how,word", [("cut", "no end-of-archive marker"), ("garbled", "unreadable member header")])
def test_damaged_shard_is_reported_without_sizes_json(fx, tmp_path, how, word):
    pattern = _damaged(fx, tmp_path, how, sizes=False)
    tracker = SkipTracker(1.0, min_seen=1)
    assert len(list(filter_bad(WdsStream(pattern, WdsDecoder(), shuffle=False), tracker))) == 17
    assert tracker.n_bad == 1 and word in tracker.reasons[0] and "after 7 samples" in tracker.reasons[0]
    ev = WdsIndexed(pattern, WdsDecoder(require_text=False))
    bad = [b for b in (ev[i] for i in range(len(ev))) if isinstance(b, BadSample)]
    assert len(bad) == 1 and word in bad[0].reason


def test_intact_shards_report_nothing(fx, tmp_path):
    pattern = _shards(fx, tmp_path)
    tracker = SkipTracker(0.0, min_seen=1)
    assert len(list(filter_bad(WdsStream(pattern, WdsDecoder(), shuffle=False), tracker))) == 20
    ev = WdsIndexed(pattern, WdsDecoder())
    assert len(ev) == 20 and not any(isinstance(ev[i], BadSample) for i in range(20))


def test_a_file_that_is_not_a_tar_says_so(tmp_path):
    (tmp_path / "pairs.csv").write_text("filepath,title\na.jpg,a caption\n")
    (item,) = list(WdsStream(str(tmp_path / "pairs.csv"), WdsDecoder(), shuffle=False))
    assert isinstance(item, BadSample) and "not a tar archive" in item.reason


def test_pipe_shards_stream_like_local_ones(fx, tmp_path):
    pattern = _shards(fx, tmp_path)
    piped = f"pipe:cat {tmp_path}/train-{{000000..000003}}.tar"
    local = list(WdsStream(pattern, WdsDecoder(), shuffle=False))
    remote = list(WdsStream(piped, WdsDecoder(), shuffle=False))
    assert _keys(remote) == _keys(local) == [f"k{i:05d}" for i in range(20)]
    assert remote[3].captions == local[3].captions and remote[3].labels == local[3].labels
    ev = WdsIndexed(piped, WdsDecoder("txt"))  # evaluation reads remote shards too
    assert [ev[i].key for i in range(len(ev))] == _keys(local)
    from tvdim.config import DataConfig
    from tvdim.data.sources import caption_corpus
    assert len(caption_corpus(DataConfig(format="wds", path=piped))) == 20


def test_pipe_failures_are_counted(fx, tmp_path):
    full = fx.shard(tmp_path / "full.tar", fx.caption_samples(10, "t")).read_bytes()
    urls = f"pipe:cat {tmp_path}/missing.tar::pipe:head -c {len(full) // 2} {tmp_path}/full.tar"
    tracker = SkipTracker(1.0, min_seen=1)
    good = list(filter_bad(WdsStream(urls, WdsDecoder(), shuffle=False), tracker))
    assert 0 < len(good) < 10 and tracker.n_bad == 2
    assert "missing.tar" in tracker.reasons[0] and "head -c" in tracker.reasons[1]


def test_txt_only_reads_the_txt_member_alone(fx, tmp_path):
    """``txt:only`` ignores a captions list in KEY.json (the RSICD study keeps one caption per image)."""
    samples = [(key, dict(files, txt=f"only {i}")) for i, (key, files) in
               enumerate(fx.caption_samples(3, text_ext="json"))]
    fx.shard(tmp_path / "a.tar", samples)
    both = next(iter(WdsStream(str(tmp_path / "a.tar"), WdsDecoder("txt"), shuffle=False)))
    only = next(iter(WdsStream(str(tmp_path / "a.tar"), WdsDecoder("txt:only"), shuffle=False)))
    assert both.captions == ["caption number 0", "another caption 0"]
    assert only.captions == ["only 0"]
