"""Guard on WebDataset shard-order shuffling: with the sample buffer off, the order samples come out in is the
shard order, which must be a permutation of the shards that varies with the epoch and with the seed."""
from __future__ import annotations

from tvdim.config import DataConfig
from tvdim.data.formats.wds import WdsDecoder, WdsStream
from tvdim.data.sources import build_source

N_SHARDS = 8


def _shards(fx, root):
    for s in range(N_SHARDS):  # one sample per shard: the sample order is the shard order
        fx.shard(root / f"train-{s:06d}.tar", fx.caption_samples(1, prefix=f"s{s}-", start=s))
    return str(root) + "/train-{000000..%06d}.tar" % (N_SHARDS - 1)


def _order(stream, epoch):
    stream.set_epoch(epoch)
    return tuple(s.key for s in stream)


def test_shard_order_varies_with_epoch_and_seed(fx, tmp_path):
    pattern = _shards(fx, tmp_path)
    every = sorted(f"s{s}-{s:05d}" for s in range(N_SHARDS))
    stream = WdsStream(pattern, WdsDecoder(), shuffle=True, shuffle_buffer=1, seed=0)
    by_epoch = [_order(stream, e) for e in range(4)]
    for order in by_epoch:
        assert sorted(order) == every  # each epoch reads every shard once
    assert len(set(by_epoch)) > 1, "shard order is the same every epoch"
    assert any(list(o) != every for o in by_epoch), "shards are read in file order"
    other = WdsStream(pattern, WdsDecoder(), shuffle=True, shuffle_buffer=1, seed=1)
    assert [_order(other, e) for e in range(4)] != by_epoch, "shard order ignores the seed"
    assert _order(stream, 2) == by_epoch[2]  # but it is reproducible


def test_training_source_shuffles_shards(fx, tmp_path):
    """build_source's training stream (data.shuffle_buffer=1: no sample buffer) still shuffles the shard order."""
    pattern = _shards(fx, tmp_path)
    stream = build_source(DataConfig(format="wds", path=pattern, shuffle_buffer=1), "train")
    orders = {_order(stream, e) for e in range(4)}
    assert len(orders) > 1
