"""Print how many tests passed / were skipped / failed per top-level test folder, from a pytest JUnit XML file.

``python .ci/counts.py JUNIT_XML`` (``.ci/run`` writes the file through ``PYTEST_ADDOPTS=--junitxml=...``).
A test's folder comes from its JUnit ``classname`` (``tests.data.test_x[.TestClass]``): ``tests/data``; the files
directly in ``tests/`` count as ``tests``.
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

OUTCOMES = ("passed", "skipped", "failed", "error")


def _is_module(part: str) -> bool:
    return part.startswith("test_") or part.endswith("_test")  # pytest's default python_files


def folder(classname: str) -> str:
    """``tests.data.test_x.TestY`` -> ``tests/data``; ``tests.test_api`` -> ``tests``."""
    parts = [p for p in classname.split(".") if p]
    if not parts:
        return "(collection)"
    out = [parts[0]]
    if len(parts) > 1 and not _is_module(parts[1]):
        out.append(parts[1])
    return "/".join(out)


def outcome(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if "failure" in tags:
        return "failed"
    if "error" in tags:
        return "error"
    if "skipped" in tags:
        return "skipped"
    return "passed"


def counts(xml_path: str | Path) -> dict[str, Counter]:
    per: dict[str, Counter] = defaultdict(Counter)
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        per[folder(case.get("classname", ""))][outcome(case)] += 1
    return dict(sorted(per.items()))


def report(per: dict[str, Counter]) -> str:
    def line(name: str, c: Counter) -> str:
        shown = [f"{c[o]} {o}" for o in OUTCOMES if c[o] or o in ("passed", "skipped")]
        return f"{name}: {', '.join(shown)}"

    total: Counter = sum(per.values(), Counter())
    return "\n".join([line(name, c) for name, c in per.items()] + [line("total", total)])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python .ci/counts.py JUNIT_XML", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"no test report at {path} (pytest did not run)", file=sys.stderr)
        return 1
    print(report(counts(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
