"""Image paths that leave data.root are read, but counted and warned about once (issue 18, section 3: defect 7)."""
from __future__ import annotations

import json
import logging
import os

from PIL import Image

from tvdim.config import DataConfig
from tvdim.data.formats.coco import CocoCaptions
from tvdim.data.formats.table import TableDataset
from tvdim.data.sample import Sample
from tvdim.data.tools import inspect_data


def _layout(tmp_path):
    root, away = tmp_path / "root", tmp_path / "away"
    root.mkdir()
    away.mkdir()
    for folder, name in ((root, "in.png"), (away, "up.png"), (away, "abs.png"), (away, "target.png")):
        Image.new("RGB", (8, 8), (90, 20, 20)).save(folder / name)
    os.symlink(away / "target.png", root / "link.png")
    (root / "sub").mkdir()
    return root, away, ["in.png", "sub/../in.png", "../away/up.png", str(away / "abs.png"), "link.png",
                        str(root / "in.png")]


def test_table_paths_outside_root_are_read_counted_and_warned_once(tmp_path, caplog):
    root, _, paths = _layout(tmp_path)
    table = root / "t.jsonl"
    table.write_text("".join(json.dumps({"filepath": p, "title": f"caption {i}"}) + "\n"
                             for i, p in enumerate(paths)))
    with caplog.at_level(logging.WARNING, logger="tvdim.data"):
        ds = TableDataset(table, "jsonl")
    assert all(isinstance(ds[i], Sample) for i in range(len(ds)))  # still read
    assert ds.outside_root == 3  # '..', absolute elsewhere, a symlink out; not sub/.. nor an absolute path inside
    warnings = [r for r in caplog.records if "outside" in r.getMessage()]
    assert len(warnings) == 1 and "t.jsonl" in warnings[0].getMessage() and "3 of" in warnings[0].getMessage()
    report = inspect_data(DataConfig(format="jsonl", path=str(table), shuffle_buffer=0))
    assert report["outside_root"] == 3 and report["usable"] == 6


def test_coco_paths_outside_root_are_counted(tmp_path, caplog):
    root, _, paths = _layout(tmp_path)
    images = [{"id": i, "file_name": p} for i, p in enumerate(paths)]
    (root / "c.json").write_text(json.dumps({"images": images,
                                             "annotations": [{"image_id": i, "caption": "x"} for i in range(6)]}))
    with caplog.at_level(logging.WARNING, logger="tvdim.data"):
        ds = CocoCaptions(root / "c.json")
    assert all(isinstance(ds[i], Sample) for i in range(len(ds)))
    assert ds.outside_root == 3
    assert sum("outside" in r.getMessage() for r in caplog.records) == 1
