"""Guards on ``max_bad_fraction``: the limit is the largest tolerated fraction ("stop when MORE than this is
unusable"), so a limit of 0 accepts clean data and refuses the first bad sample, and a fraction exactly at the
limit passes."""
from __future__ import annotations

import pytest
from PIL import Image

from tvdim.data.pipeline import StreamingPretrainDataset
from tvdim.data.quality import SkipTracker, filter_bad
from tvdim.data.sample import BadSample, Sample
from tvdim.errors import DataError


def _clean(n: int) -> list[Sample]:
    return [Sample(f"k{i}", Image.new("RGB", (8, 8), (i, 0, 0)), [f"c {i}"]) for i in range(n)]


def test_zero_limit_accepts_clean_data():
    tracker = SkipTracker(0.0)
    for _ in range(120):
        tracker.ok()
        tracker.check()
    tracker.check(final=True)
    assert list(filter_bad(_clean(10), SkipTracker(0.0))) == _clean(10)


def test_zero_limit_refuses_one_bad_sample():
    items = _clean(10) + [BadSample("broken", "truncated")]
    with pytest.raises(DataError, match="broken"):
        list(filter_bad(items, SkipTracker(0.0)))


def test_fraction_exactly_at_the_limit_passes():
    tracker = SkipTracker(0.05)
    for i in range(5):
        tracker.bad(f"b{i}", "bad")
    tracker.ok(95)
    tracker.check()
    tracker.check(final=True)  # 5 of 100 = 5 %: not more than the limit
    tracker.bad("one more", "bad")
    with pytest.raises(DataError):
        tracker.check(final=True)


def test_streaming_dataset_with_zero_limit_reads_clean_data():
    ds = StreamingPretrainDataset(_clean(6), 32, max_bad_fraction=0.0, augment="device")
    it = iter(ds)
    assert [next(it).key for _ in range(12)] == [f"k{i}" for i in range(6)] * 2  # two passes
