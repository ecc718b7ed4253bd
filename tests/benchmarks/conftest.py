"""The benchmark scripts are files, not a package: each test module gets the script it tests as a module."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a fresh module (named ``bench_<name>``)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def e2e() -> ModuleType:
    return load_script("e2e")


@pytest.fixture(scope="module")
def tp() -> ModuleType:
    return load_script("throughput")


@pytest.fixture(scope="module")
def study() -> ModuleType:
    return load_script("study")


@pytest.fixture(scope="module")
def ms() -> ModuleType:
    return load_script("mutation_score")
