"""COCO captions and Karpathy-split JSON readers."""
import json

import pytest

from tvdim.data.formats.coco import CocoCaptions, KarpathyCaptions
from tvdim.data.sample import BadSample, Sample
from tvdim.errors import DataError


def _images(fx, folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i}.jpg").write_bytes(fx.jpeg(16, (i * 50, 0, 0)))


def test_coco(fx, tmp_path):
    _images(fx, tmp_path / "imgs", 3)
    ann = {"images": [{"id": 10 + i, "file_name": f"imgs/{i}.jpg"} for i in range(3)],
           "annotations": [{"image_id": 10, "caption": "one"}, {"image_id": 10, "caption": "uno"},
                           {"image_id": 11, "caption": "two"}, {"image_id": 12, "caption": "  "}]}
    p = tmp_path / "captions.json"
    p.write_text(json.dumps(ann))
    ds = CocoCaptions(p)
    assert len(ds) == 3 and ds[0].captions == ["one", "uno"] and ds[1].captions == ["two"]
    assert isinstance(ds[2], BadSample) and "caption" in ds[2].reason
    assert list(ds.iter_captions()) == ["one", "uno", "two"]
    p.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="annotations.*keys found: images"):
        CocoCaptions(p)


def test_karpathy_splits(fx, tmp_path):
    _images(fx, tmp_path / "val2014", 4)
    splits = ["train", "restval", "val", "test"]
    data = {"images": [{"filepath": "val2014", "filename": f"{i}.jpg", "split": s,
                        "sentences": [{"raw": f"cap {s}"}]} for i, s in enumerate(splits)]}
    p = tmp_path / "dataset_coco.json"
    p.write_text(json.dumps(data))
    train = KarpathyCaptions(p, "train")
    assert len(train) == 2 and [train[i].captions[0] for i in range(2)] == ["cap train", "cap restval"]
    test = KarpathyCaptions(p, "test")
    assert len(test) == 1 and isinstance(test[0], Sample) and test[0].key == "val2014/3.jpg"
    with pytest.raises(DataError, match="unknown Karpathy split"):
        KarpathyCaptions(p, "dev")
    p.write_text(json.dumps({"images": [{"filename": "0.jpg", "split": "val", "sentences": []}]}))
    with pytest.raises(DataError, match="splits found: val"):
        KarpathyCaptions(p, "test")
