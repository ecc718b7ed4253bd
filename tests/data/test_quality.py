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
