"""Guards from the sampled mutation run of issue 18 (tvdim, the modules directly under src/tvdim): the lazy
top-level exports are cached as themselves, and a shard's JSON caption list gives one text per caption."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

import tvdim
from tvdim.config import DataConfig
from tvdim.data.sample import BadSample
from tvdim.embed import iter_captions


def test_a_lazy_export_is_the_same_object_on_every_access(monkeypatch):
    monkeypatch.delitem(vars(tvdim), "load_model", raising=False)  # as if never touched in this process
    first = tvdim.load_model
    assert callable(first) and tvdim.load_model is first and vars(tvdim)["load_model"] is first
    with pytest.raises(AttributeError, match="module 'tvdim' has no attribute 'no_such_name'"):
        tvdim.no_such_name  # noqa: B018


def test_captions_of_a_shard_come_from_its_json_list_one_text_each(tmp_path):
    path = tmp_path / "s-000000.tar"
    with tarfile.open(path, "w") as tf:
        for name, data in (("k0.json", json.dumps({"captions": ["a red circle", " ", "two squares"]})),
                           ("k0.txt", "only the first"), ("k1.txt", "a lone caption")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data.encode())
            tf.addfile(ti, io.BytesIO(data.encode()))
    out = list(iter_captions(str(path), "wds", DataConfig()))
    assert not any(isinstance(x, BadSample) for x in out)
    assert out == [("k0#0", "a red circle"), ("k0#1", "two squares"), ("k1#0", "a lone caption")]
