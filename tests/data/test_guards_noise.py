"""Guards on caption noise: a swapped caption is always another sample's (never the image's own), in the
synthetic generator and in ``tvdim data corrupt-captions``; and the synthetic noise touches only the
pretraining captions, never the probes' labelled training split (``eval_train``) nor ``test``."""
from __future__ import annotations

import tarfile

from tvdim.config import DataConfig
from tvdim.data.formats.corrupt import corrupt_captions
from tvdim.data.synthetic import SyntheticCaptions, build_synthetic


def test_synthetic_swap_never_gives_an_image_its_own_caption():
    for n in (2, 3, 5):
        for seed in range(6):
            ds = SyntheticCaptions(n=n, seed=seed, swap=1.0)
            clean = [ds.clean_caption(i) for i in range(n)]
            for i in range(n):
                got = ds.caption(i)
                others = [clean[j] for j in range(n) if j != i]
                assert got in others, f"n={n} seed={seed} i={i}: swap gave {got!r}, own {clean[i]!r}"
                if clean.count(clean[i]) == 1:
                    assert got != clean[i]


def _table(path, n):
    path.write_text("filepath,title\n" + "".join(f"img/{i}.png,caption number {i}\n" for i in range(n)))
    return path


def test_corrupt_swap_never_keeps_the_rows_own_caption(tmp_path):
    for n in (2, 3, 6):
        for seed in range(5):
            src = _table(tmp_path / f"in{n}-{seed}.csv", n)
            out = tmp_path / f"out{n}-{seed}.csv"
            res = corrupt_captions(str(src), str(out), fmt="csv", mode="swap", p=1.0, seed=seed)
            assert res["changed"] == n
            rows = out.read_text().splitlines()[1:]
            for i, row in enumerate(rows):
                title = row.split(",", 1)[1]
                assert title != f"caption number {i}", f"n={n} seed={seed}: row {i} kept its own caption"
                assert title in {f"caption number {j}" for j in range(n)}


def test_corrupt_swap_on_shards_never_keeps_the_own_caption(fx, tmp_path):
    for seed in range(4):
        src = tmp_path / f"in{seed}"
        fx.shard(src / "a.tar", fx.caption_samples(2, prefix="a"))
        fx.shard(src / "b.tar", fx.caption_samples(1, prefix="b", start=2))
        out = tmp_path / f"out{seed}"
        corrupt_captions(str(src), str(out), fmt="wds", mode="swap", p=1.0, seed=seed)
        for name in ("a.tar", "b.tar"):
            with tarfile.open(out / name) as tf:
                for m in tf.getmembers():
                    if m.name.endswith(".txt"):
                        i = int(m.name.split(".")[0][1:])
                        assert tf.extractfile(m).read().decode() != f"caption number {i}"


def test_synthetic_noise_only_touches_the_pretraining_split():
    cfg = DataConfig(format="synthetic", synth_train=12, synth_test=12, synth_seed=4, synth_swap=1.0,
                     synth_corrupt=1.0, synth_distract=1.0)
    train, probe_train, test = (build_synthetic(cfg, s, 16) for s in ("train", "eval_train", "test"))
    # the probes' training split is the pretraining images, with their clean captions
    assert probe_train.n == train.n == 12
    assert [probe_train.caption(i) for i in range(12)] == [train.clean_caption(i) for i in range(12)]
    assert [test.caption(i) for i in range(12)] == [test.clean_caption(i) for i in range(12)]
    assert all(train.caption(i) != train.clean_caption(i) for i in range(12))  # the noise is on
    assert probe_train[0].captions == [train.clean_caption(0)]
