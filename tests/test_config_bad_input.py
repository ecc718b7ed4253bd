"""Config input the loader must handle with one clear line (issue 18, section 3: defects 4 and 8)."""
from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from tvdim import config as config_mod
from tvdim.cli import main
from tvdim.config import Config, from_dict, load_config, to_plain
from tvdim.errors import ConfigError

SRC = Path(config_mod.__file__).parent

# Fields read in a way a ``.field`` search cannot see, each with the reason.
NOT_READ_AS_ATTRIBUTE: dict[str, str] = {}


def test_non_utf8_config_file_is_one_line_config_error(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_bytes(b"train:\n  steps: 3\n  out_dir: caf\xe9\xff\n")
    with pytest.raises(ConfigError, match="bad.yaml") as info:
        load_config(f)
    assert "UTF-8" in str(info.value) and "\n" not in str(info.value)
    assert main(["config", "--config", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tvdim: error:") and "bad.yaml" in err[0]


def test_removed_keys_of_old_configs_are_dropped_with_a_note(tmp_path, caplog):
    old = to_plain(Config())
    old["data"]["caption_noise"] = 0.2
    old["loss"]["inter"] = "rank"
    with caplog.at_level(logging.INFO, logger="tvdim.config"):
        cfg = from_dict(old)  # a checkpoint written before the keys were removed still loads
    assert cfg == Config()
    assert "data.caption_noise" in caplog.text and "loss.inter" in caplog.text
    f = tmp_path / "old.yaml"
    f.write_text("data:\n  caption_noise: 0.1\nloss:\n  inter: nce\n")
    assert load_config(f) == Config()
    assert not hasattr(Config().data, "caption_noise") and not hasattr(Config().loss, "inter")


def test_every_config_key_is_read_somewhere():
    """Each dataclass field is read as ``.field`` in src/ outside config.py (``self.field`` does not count: that is
    usually an object's own attribute of the same name)."""
    text = "\n".join(p.read_text() for p in SRC.rglob("*.py") if p.name != "config.py")
    unread = []
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(getattr(Config(), section.name)):
            key = f"{section.name}.{f.name}"
            if key in NOT_READ_AS_ATTRIBUTE:
                continue
            if not re.search(rf"(?<!\bself)\.{re.escape(f.name)}\b", text):
                unread.append(key)
    assert not unread, f"config keys validated but never read: {unread}"
