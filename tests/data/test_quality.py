"""SkipTracker / filter_bad policy."""
import logging
import pickle

import pytest
from PIL import Image

from tvdim.data.quality import SkipTracker, filter_bad
from tvdim.data.sample import BadSample, Sample
from tvdim.errors import DataError


def _items(n_good, n_bad):
    img = Image.new("RGB", (2, 2))
    return [Sample(f"g{i}", img, ["c"]) for i in range(n_good)] + [BadSample(f"b{i}", "broken") for i in range(n_bad)]


def test_skips_and_counts_with_reasons(caplog):
    t = SkipTracker(0.5, min_seen=5, log_first=2)
    with caplog.at_level(logging.WARNING, logger="tvdim.data"):
        out = list(filter_bad(_items(8, 3), t))
    assert [s.key for s in out] == [f"g{i}" for i in range(8)]
    s = t.summary()
    assert s["seen"] == 11 and s["bad"] == 3 and s["first_reasons"] == ["b0: broken", "b1: broken"]
    assert "b0" in caplog.text and "b2" not in caplog.text


def test_threshold_exceeded_raises():
    t = SkipTracker(0.1, min_seen=10)
    with pytest.raises(DataError, match=r"unusable .*max_bad_fraction=0.1; first reasons: b0: broken"):
        list(filter_bad(_items(10, 5), t))


def test_min_seen_delays_check():
    t = SkipTracker(0.1, min_seen=50)
    t.bad("x", "r")
    t.check()  # 1 of 1 bad but below min_seen: no error
    with pytest.raises(DataError, match="1 of 1"):
        t.check(final=True)


def test_no_usable_samples():
    with pytest.raises(DataError, match="no usable samples in data.csv; first reasons: b0: broken"):
        list(filter_bad(_items(0, 2), SkipTracker(1.0), "data.csv"))
    with pytest.raises(DataError, match="no usable samples in empty"):
        list(filter_bad([], SkipTracker(1.0), "empty"))


def test_picklable_and_merge():
    t = SkipTracker(0.2)
    t.ok(3)
    t.bad("k", "why")
    t2 = pickle.loads(pickle.dumps(t))
    assert t2.summary() == t.summary() and t2.logger.name == "tvdim.data"
    t.merge(t2)
    assert t.seen == 8 and t.n_bad == 2


def test_stops_below_min_seen_once_the_outcome_is_certain():
    """README: the run stops at once. With 3 bad of the first 10 and a 5 % limit, 50 samples can hold at most 2
    bad ones, so waiting for min_seen cannot change the outcome: stop now (2 bad ones may still be fine)."""
    t = SkipTracker(0.05, min_seen=50)
    t.ok(7)
    t.bad("a", "r")
    t.bad("b", "r")
    t.check()  # 2 of 9: could still end below 5 % of 50
    t.bad("c", "r")
    with pytest.raises(DataError, match="3 of 10 samples unusable"):
        t.check()


def test_filter_bad_enforces_the_limit_at_the_end_of_a_short_pass():
    with pytest.raises(DataError, match="1 of 10 samples unusable"):
        list(filter_bad(_items(9, 1), SkipTracker(0.05, min_seen=50)))


def test_one_record_can_stand_for_several_lost_samples():
    t = SkipTracker(0.5, min_seen=1)
    list(filter_bad(_items(8, 0) + [BadSample("s.tar", "short shard", count=4)], t))
    assert t.summary()["seen"] == 12 and t.n_bad == 4 and t.reasons == ["s.tar: short shard"]


def test_record_batch_counts_drawn_samples_once():
    t = SkipTracker(1.0)
    t.record_batch({"bad": [("k", "broken", 1), ("s.tar", "short", 3)], "usable": 6})
    assert (t.seen, t.n_bad) == (10, 4)
