"""The YAML configs shipped in configs/ and inside the package stay valid as the config schema changes."""
from pathlib import Path

import pytest

from tvdim.config import load_config
from tvdim.demo import demo_config_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")) + [demo_config_path()],
                         ids=lambda p: p.name)
def test_config_file_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.model.image_size in (32, 64, 128)
    assert cfg.data.format in ("synthetic", "wds")
