"""ruff (lint) and mypy (types) pass on the package, as configured in pyproject.toml; both come with the test
extra (``pip install -e ".[test]"``), and the tests skip with a reason when they are not installed."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed (pip install -e '.[test]')")
def test_ruff_passes():
    res = run(["ruff", "check", "src", "tests", "benchmarks"])
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_mypy_passes():
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    res = run([sys.executable, "-m", "mypy"])
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
