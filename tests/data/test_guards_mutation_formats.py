"""Guards from the sampled mutation run of issue 18 (tvdim.data): format guessing, WebDataset keys, the image file
behind an item, a missing shard's record and low-valued integer images."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from tvdim.data.formats.convert import safe_key, source_path
from tvdim.data.formats.images import decode_image
from tvdim.data.formats.wds_eval import index_shard
from tvdim.data.sample import BadSample
from tvdim.data.tools import guess_format


def test_a_json_file_is_coco_when_it_has_annotations_else_karpathy(tmp_path):
    coco, karpathy = tmp_path / "coco.json", tmp_path / "k.json"
    coco.write_text('{"images": [], "annotations": []}')
    karpathy.write_text('{"images": [{"filename": "a.jpg", "sentences": []}]}')
    assert guess_format(str(coco)) == "coco"
    assert guess_format(str(karpathy)) == "karpathy"
    # bytes that are not UTF-8 do not stop the guess (read with errors="replace")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"info": "caf\xe9", "annotations": []}')
    assert guess_format(str(latin)) == "coco"


def test_safe_key_drops_only_the_file_extension():
    assert safe_key("img/a.b.c.jpg", set()) == "img_a_b_c"
    used: set[str] = set()
    keys = [safe_key(k, used) for k in ("x.1.jpg", "x.2.jpg")]
    assert keys == ["x_1", "x_2"]  # not one stem "x" made unique by a counter
    assert safe_key("dir.v2/name", set()) == "dir_v2_name"  # a dot in a folder is no extension


def test_source_path_finds_the_path_in_a_readers_item_tuple():
    class Reader:
        items = [("key", Path("imgs/a.jpg"), "a caption"), ("plain", "not a path")]

    assert source_path(Reader(), 0) == Path("imgs/a.jpg")
    assert source_path(Reader(), 1) is None


def test_a_missing_shard_is_one_record_keyed_by_its_url_counting_its_expected_samples(tmp_path):
    url = str(tmp_path / "gone-000003.tar")
    out = index_shard(url, expected=(7, "sizes.json"))
    assert len(out) == 1 and isinstance(out[0], BadSample)
    assert (out[0].key, out[0].reason, out[0].count) == (url, "missing shard file", 7)


def test_a_16_bit_image_of_small_values_is_not_stretched_to_white():
    """Integer images keep their values when they fit 8 bits; only float images in 0..1 are scaled by 255."""
    buf = io.BytesIO()
    Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint16)).save(buf, format="PNG")
    img = decode_image(buf.getvalue(), "k")
    assert img.mode == "RGB" and np.asarray(img)[:, :, 0].tolist() == [[0, 1], [1, 0]]
    f = Image.fromarray(np.array([[0.0, 1.0]], dtype=np.float32), mode="F")
    buf = io.BytesIO()
    f.save(buf, format="TIFF")
    assert np.asarray(decode_image(buf.getvalue(), "f"))[:, :, 0].tolist() == [[0, 255]]
