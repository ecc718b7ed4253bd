"""benchmarks/mutation_score.py: each package is mutated alone, against its own tests, and counted under its name."""
from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _section(ms, package):
    return tomllib.loads(ms.mutmut_section(package))["tool"]["mutmut"]


def _mutated(section, path):
    """mutmut's own rule: fnmatch against only_mutate, then not against do_not_mutate."""
    return (any(fnmatch.fnmatch(path, p) for p in section["only_mutate"])
            and not any(fnmatch.fnmatch(path, p) for p in section["do_not_mutate"]))


def test_every_source_file_is_mutated_by_exactly_one_package(ms):
    files = [str(p.relative_to(ROOT)) for p in (ROOT / "src" / "tvdim").rglob("*.py")]
    sections = {pkg: _section(ms, pkg) for pkg in ms.PACKAGES}
    for f in files:
        owners = [pkg for pkg, sec in sections.items() if _mutated(sec, f)]
        assert len(owners) == 1, (f, owners)
    assert _mutated(sections["data"], "src/tvdim/data/formats/wds.py")
    assert not _mutated(sections["top"], "src/tvdim/data/formats/wds.py")
    assert _mutated(sections["top"], "src/tvdim/hub.py")


def test_each_package_runs_only_its_own_tests(ms):
    assert _section(ms, "data")["pytest_add_cli_args_test_selection"] == ["tests/data"]
    top = _section(ms, "top")["pytest_add_cli_args_test_selection"]
    assert "tests/test_hub.py" in top and all(t.count("/") == 1 for t in top)


def test_with_section_replaces_the_mutmut_table_and_keeps_the_rest(ms):
    text = '[project]\nname = "x"\n\n[tool.mutmut]\nonly_mutate = ["a/*"]\n\n[tool.pytest.ini_options]\nq = 1\n'
    out = tomllib.loads(ms.with_section(text, ms.mutmut_section("models")))
    assert out["project"]["name"] == "x" and out["tool"]["pytest"]["ini_options"]["q"] == 1
    assert out["tool"]["mutmut"]["only_mutate"] == ["src/tvdim/models/*"]


@pytest.mark.parametrize("name, package", [
    ("tvdim.data.formats.wds.x_read__mutmut_3", "tvdim.data"),
    ("tvdim.losses.nce.x_nce_loss__mutmut_1", "tvdim.losses"),
    ("tvdim.hub.x_export__mutmut_2", "tvdim (top)"),
    ("tvdim.config.xǁDataConfigǁcheck__mutmut_9", "tvdim (top)"),
])
def test_package_of_names_the_subpackage_or_top(ms, name, package):
    assert ms.package_of(name) == package


def test_table_scores_killed_and_timeout_as_detected(ms):
    status = {"tvdim.data.a.x_f__mutmut_1": "killed", "tvdim.data.a.x_f__mutmut_2": "survived",
              "tvdim.data.a.x_f__mutmut_3": "timeout", "tvdim.hub.x_g__mutmut_1": "survived"}
    rows = {line.split(" | ")[0].strip("| "): line for line in ms.table(status).splitlines()}
    assert rows["tvdim.data"].endswith("2 / 3 = 66.7 % |")
    assert rows["tvdim (top)"].endswith("0 / 1 = 0.0 % |")
    assert rows["all"].endswith("2 / 4 = 50.0 % |")
