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


# --sample N --seed S (issue 18): a uniform draw over all mutant names, killed / N with a Wilson interval

NAMES = [f"tvdim.data.m{i:02d}.x_f__mutmut_{j}" for i in range(10) for j in range(1, 6)]  # 50 names


def test_draw_is_the_seeded_sample_of_the_sorted_names(ms):
    import random
    shuffled = random.Random(5).sample(NAMES, len(NAMES))
    drawn = ms.draw(shuffled, 7, seed=18)
    # the draw does not depend on the order the names come in, only on the seed: random.Random(18).sample of the
    # sorted list, reported sorted
    assert drawn == sorted(random.Random(18).sample(sorted(NAMES), 7))
    assert drawn == ms.draw(NAMES, 7, seed=18) == ms.draw(set(NAMES), 7, seed=18)
    assert len(set(drawn)) == 7 and set(drawn) <= set(NAMES)
    assert ms.draw(NAMES, 7, seed=19) != drawn
    assert ms.draw(NAMES, 500, seed=1) == sorted(NAMES)  # more than there are: all of them, once each


def test_draw_is_uniform_over_the_names(ms):
    """Over many seeds each name is drawn about n / len(names) of the time, the first and last ones included."""
    seeds, n = 4000, 5
    counts = dict.fromkeys(NAMES, 0)
    for seed in range(seeds):
        for name in ms.draw(NAMES, n, seed):
            counts[name] += 1
    expected = seeds * n / len(NAMES)  # 400 per name; binomial sd about 19
    assert all(abs(c - expected) < 6 * 19 for c in counts.values()), counts
    assert abs(counts[min(NAMES)] - expected) < 6 * 19 and abs(counts[max(NAMES)] - expected) < 6 * 19


@pytest.mark.parametrize("k, n, lo, hi", [
    # by hand: p = k / n, z = 1.959964, centre = (p + z^2 / 2n) / (1 + z^2 / n),
    # half = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)
    (80, 100, 0.711171, 0.866633),  # centre 0.788902, half 0.077731 (tables: 0.711-0.867)
    (9, 10, 0.595850, 0.982124),    # centre 0.788987, half 0.193137 (tables: 0.596-0.982)
    (0, 20, 0.0, 0.161125),         # centre 0.080563 = half
    (20, 20, 0.838875, 1.0),
])
def test_wilson_interval_against_a_hand_computation(ms, k, n, lo, hi):
    got_lo, got_hi = ms.wilson(k, n)
    assert got_lo == pytest.approx(lo, abs=2e-6) and got_hi == pytest.approx(hi, abs=2e-6)


def test_wilson_interval_is_not_the_normal_one_and_holds_the_score(ms):
    lo, hi = ms.wilson(95, 100)
    assert lo < 0.95 < hi and hi < 1.0
    assert lo == pytest.approx(0.888, abs=1e-3) and hi == pytest.approx(0.9785, abs=1e-3)  # normal: 0.907-0.993
    assert ms.wilson(0, 0) == (0.0, 1.0)


def test_sample_row_counts_timeouts_as_killed_and_lists_the_rest(ms):
    sampled = {"a": "killed", "b": "timeout", "c": "survived", "d": "killed", "e": "no tests", "f": "survived",
               "g": "killed", "h": "killed", "i": "killed", "j": "killed"}
    row = ms.sample_row("data", sampled, 3530)
    assert row == "| data | 10 | 7 | 70.0 % | 39.7 - 89.2 % | 3530 | 1 no tests, 2 survived |"
    assert row.count("|") == ms.SAMPLE_HEAD.splitlines()[0].count("|")
    assert ms.sample_row("top", {"a": "killed"}, 1) == "| top | 1 | 1 | 100.0 % | 20.7 - 100.0 % | 1 | - |"


def test_wilson_interval_stays_within_zero_and_one_at_the_ends(ms):
    """At k = 0 and k = n the bounds are 0 and 1 in exact arithmetic; rounding must not take them outside."""
    for n in range(1, 200):
        for k in (0, n):
            lo, hi = ms.wilson(k, n)
            assert 0.0 <= lo <= hi <= 1.0, (k, n, lo, hi)


def test_prepare_with_a_commit_copies_the_committed_files_not_the_work_tree(ms, monkeypatch, tmp_path):
    import subprocess
    monkeypatch.setattr(ms, "WORK", tmp_path)
    work = ms.prepare("losses", clean=True, commit="HEAD")
    assert work == tmp_path / "losses"
    committed = subprocess.run(["git", "show", "HEAD:src/tvdim/losses/__init__.py"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout
    assert (work / "src/tvdim/losses/__init__.py").read_text() == committed
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD", "src", "tests", *ms.ALSO_COPY], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    copied = [str(f.relative_to(work)) for f in work.rglob("*") if f.is_file() and f.name != "pyproject.toml"]
    assert sorted(copied) == sorted(listed)  # what was committed, and nothing else (no __pycache__, no new files)
    section = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert section["only_mutate"] == ["src/tvdim/losses/*"]


def test_prepare_with_a_commit_selects_the_committed_tests(ms, monkeypatch, tmp_path):
    """The test files of ``top`` are globbed in the copy: a test file only in the work tree is not passed to pytest
    (it would not exist in the copy, and pytest would stop on it)."""
    import subprocess
    monkeypatch.setattr(ms, "WORK", tmp_path)
    (tmp_path / "top" / "tests").mkdir(parents=True)
    work = ms.prepare("top", clean=False, commit="HEAD")
    committed = subprocess.run(["git", "ls-tree", "--name-only", "HEAD", "tests/"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.split()
    expected = sorted(t for t in committed if fnmatch.fnmatch(t, "tests/test_*.py"))
    section = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert section["pytest_add_cli_args_test_selection"] == expected
    assert all((work / t).is_file() for t in expected)


def test_new_processes_of_a_mutmut_run_import_the_copy_not_the_work_tree(ms, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    env = ms.mutmut_env(tmp_path / "data")
    assert env["PYTHONPATH"] == str(tmp_path / "data" / "src")
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"


def test_the_files_tests_read_are_copied_and_deselected_tests_left_out(ms, monkeypatch, tmp_path):
    monkeypatch.setattr(ms, "WORK", tmp_path)
    work = ms.prepare("top", clean=True, commit="HEAD", deselect=("tests/test_cli.py::test_x",))
    assert (work / ".ci" / "counts.py").is_file() and (work / "README.md").is_file()
    import subprocess
    committed = subprocess.run(["git", "ls-tree", "--name-only", "HEAD", "configs/"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.split()
    assert sorted(f"configs/{p.name}" for p in (work / "configs").glob("*")) == sorted(committed) != []
    section = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert section["also_copy"] == [".ci", "configs", "README.md"]  # mutmut copies them on into mutants/
    assert section["pytest_add_cli_args"] == ["--deselect", "tests/test_cli.py::test_x"]
    assert "pytest_add_cli_args" not in _section(ms, "data")


def test_rerunning_the_sample_runs_only_its_survivors(ms):
    status = {"a": "killed", "b": "survived", "c": "timeout", "d": "no tests", "e": "not checked", "f": "survived"}
    names = ["a", "b", "c", "d", "e"]
    assert ms.to_run(names, status, rerun_survivors=False) == names
    assert ms.to_run(names, status, rerun_survivors=True) == ["b", "d", "e"]  # "f" was not drawn
