"""The plain ``python -m pytest`` collects every ``test_*.py`` under tests/ (pytest's default ``norecursedirs``
skips folders named ``dist*``, ``build``, ...: tests/dist was never run), and ``.ci/counts.py`` counts per folder.

The collection check runs pytest with ``--collect-only`` in a subprocess (no test body runs, so it cannot recurse;
``TVDIM_COLLECTION_CHECK`` marks the inner run and skips this file's checks there anyway).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INNER = "TVDIM_COLLECTION_CHECK"

# A pytest plugin for the subprocess: which test files the session ends up with (after any deselection in the
# config) and which modules were skipped or failed to import at collection.
PROBE = textwrap.dedent('''
    import json, os
    from pathlib import Path

    _state = {"items": {}, "skipped": [], "errors": []}

    def pytest_collectreport(report):
        if report.nodeid.endswith(".py") and report.outcome != "passed":
            _state["skipped" if report.outcome == "skipped" else "errors"].append(report.nodeid)

    def pytest_collection_finish(session):
        root = Path(str(session.config.rootpath))
        for item in session.items:
            rel = Path(str(item.path)).resolve().relative_to(root).as_posix()
            _state["items"][rel] = _state["items"].get(rel, 0) + 1

    def pytest_sessionfinish(session):
        Path(os.environ["TVDIM_COLLECTION_OUT"]).write_text(json.dumps(_state))
''')

pytestmark = pytest.mark.skipif(os.environ.get(INNER) == "1", reason="inside the collection check's own run")


def uncollected(root: Path, tmp: Path, *args: str) -> tuple[list[str], dict]:
    """Run ``python -m pytest --collect-only`` in ``root`` as a plain run would; returns the ``tests/**/test_*.py``
    files none of whose tests the session holds, and the probe's record."""
    (tmp / "collection_probe.py").write_text(PROBE)
    out = tmp / "collected.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}  # .ci/run's --junitxml is not for us
    env.update({INNER: "1", "TVDIM_COLLECTION_OUT": str(out),
                "PYTHONPATH": os.pathsep.join([str(tmp), *filter(None, [os.environ.get("PYTHONPATH")])])})
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-p", "collection_probe",
                           "-p", "no:cacheprovider", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert out.is_file(), f"pytest --collect-only did not finish (rc {proc.returncode}):\n{proc.stdout[-3000:]}"
    state = json.loads(out.read_text())
    reached = set(state["items"]) | set(state["skipped"])  # a module skipped at import (importorskip) is reached
    files = sorted(p.relative_to(root).as_posix() for p in (root / "tests").rglob("test_*.py")
                   if "__pycache__" not in p.parts)
    return [f for f in files if f not in reached], state


def test_plain_pytest_collects_every_test_file(tmp_path):
    missing, state = uncollected(ROOT, tmp_path)
    assert not state["errors"], f"collection errors: {state['errors']}"
    assert not missing, f"test files the plain `python -m pytest` never runs: {missing}"
    assert any(f.startswith("tests/distributed/") for f in state["items"])


def test_the_check_sees_a_folder_pytest_skips(tmp_path):
    """A tiny project with tests/dist (hidden by the default norecursedirs) and a folder hidden by config."""
    proj = tmp_path / "proj"
    for rel in ["tests/test_top.py", "tests/dist/test_hidden.py", "tests/data/test_seen.py",
                "tests/extra/test_ignored.py"]:
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text("def test_x():\n    pass\n")
    (proj / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
                                         'norecursedirs = ["dist*", "extra"]\n')
    missing, state = uncollected(proj, tmp_path)
    assert missing == ["tests/dist/test_hidden.py", "tests/extra/test_ignored.py"]
    assert set(state["items"]) == {"tests/test_top.py", "tests/data/test_seen.py"}
    (proj / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')  # the default
    missing, _ = uncollected(proj, tmp_path)
    assert missing == ["tests/dist/test_hidden.py"]


def _counts_module():
    spec = importlib.util.spec_from_file_location("ci_counts", ROOT / ".ci" / "counts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="7">
<testcase classname="tests.data.test_a" name="test_1" time="0.1"/>
<testcase classname="tests.data.test_a" name="test_2" time="0.1"><skipped message="no gpu"/></testcase>
<testcase classname="tests.data.test_b.TestGroup" name="test_3" time="0.1"/>
<testcase classname="tests.distributed.test_global_batch" name="test_4" time="0.1"><failure message="x"/></testcase>
<testcase classname="tests.test_api" name="test_5" time="0.1"/>
<testcase classname="tests.test_api" name="test_6" time="0.1"><error message="fixture"/></testcase>
<testcase classname="tests.test_cli" name="test_7" time="0.1"><skipped message="xfail"/></testcase>
</testsuite></testsuites>
"""


def test_ci_counts_per_top_level_folder(tmp_path, capsys):
    counts = _counts_module()
    xml = tmp_path / "junit.xml"
    xml.write_text(JUNIT)
    per = counts.counts(xml)
    assert {k: dict(v) for k, v in per.items()} == {
        "tests": {"passed": 1, "error": 1, "skipped": 1}, "tests/data": {"passed": 2, "skipped": 1},
        "tests/distributed": {"failed": 1}}
    assert counts.main([str(xml)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "tests: 1 passed, 1 skipped, 1 error", "tests/data: 2 passed, 1 skipped",
        "tests/distributed: 0 passed, 0 skipped, 1 failed", "total: 3 passed, 2 skipped, 1 failed, 1 error"]
    assert counts.main([str(tmp_path / "absent.xml")]) == 1


def test_ci_run_calls_the_readme_test_command_and_keeps_its_status():
    run = (ROOT / ".ci" / "run").read_text()
    command = 'pip install -e ".[test]" && python -m pytest'
    assert command in (ROOT / "README.md").read_text()
    assert f"{command} || status=$?" in run and 'exit "$status"' in run and "set -euo pipefail" in run
    assert "--junitxml=" in run and ".ci/counts.py" in run
