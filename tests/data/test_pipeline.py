"""Training pipeline accounting: bad samples counted once, streams that never yield stop with a reason."""
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from tvdim.data.formats.wds import WdsDecoder, WdsStream
from tvdim.data.pipeline import Collator, PretrainDataset, ResumableSampler, StreamingPretrainDataset, next_batch
from tvdim.data.quality import SkipTracker
from tvdim.data.sample import BadSample, Sample
from tvdim.errors import DataError


def _source(bad: set[int], n: int = 8) -> list:
    img = Image.new("RGB", (8, 8), (200, 10, 10))
    return [BadSample(f"b{i}", "broken") if i in bad else Sample(f"g{i}", img, ["c"]) for i in range(n)]


class _Passes:
    """An iterable source that fails the test (instead of hanging) when read more than ``limit`` times."""

    def __init__(self, items: list, limit: int = 3) -> None:
        self.items, self.limit, self.passes = items, limit, 0

    def __iter__(self):
        self.passes += 1
        if self.passes > self.limit:
            raise RuntimeError(f"read {self.passes} times without stopping")
        return iter(self.items)


def test_consecutive_bad_samples_are_counted_once_per_epoch():
    """Indices 2 and 3 are bad: drawing 2 skips both, drawing 3 skips 3 again; each must count once."""
    ds = PretrainDataset(_source({2, 3}), image_size=32)
    collate, tracker = Collator(None, []), SkipTracker(1.0)
    sampler = iter(ResumableSampler(8, 4))
    batches = [collate([ds[next(sampler)] for _ in range(4)]) for _ in range(2)]  # one epoch
    assert sum(len(b["bad"]) for b in batches) == 2
    for b in batches:
        tracker.record_batch(b)
    assert (tracker.seen, tracker.n_bad) == (8, 2)


def test_stream_with_no_usable_sample_stops_after_one_pass():
    src = _Passes(_source(set(range(8))))
    with pytest.raises(DataError, match="no usable sample .*b0: broken"):
        next(iter(StreamingPretrainDataset(src, 32, max_bad_fraction=1.0)))
    assert src.passes == 1


def test_stream_applies_the_bad_fraction():
    src = _Passes(_source({2, 3, 4, 5, 6, 7}))
    it = iter(StreamingPretrainDataset(src, 32, max_bad_fraction=0.05))
    with pytest.raises(DataError, match=r"3 of 5 samples unusable.*max_bad_fraction=0.05"):
        for _ in range(4):
            next(it)


def test_zero_byte_shard_stops_with_the_reason_from_a_worker(fx, tmp_path):
    fx.shard(tmp_path / "z.tar", [(f"k{i}", {"jpg": b"", "txt": "a caption"}) for i in range(6)])
    ds = StreamingPretrainDataset(WdsStream(str(tmp_path / "z.tar"), WdsDecoder(), shuffle=False), 32)
    loader = DataLoader(ds, batch_size=2, num_workers=1, collate_fn=Collator(None, []), timeout=60)  # no hang
    with pytest.raises(DataError) as err:
        next_batch(iter(loader))
    msg = str(err.value)
    assert "zero-byte image" in msg and "z.tar/k0" in msg
    assert "\n" not in msg and "Traceback" not in msg  # one line, as the CLI prints it
