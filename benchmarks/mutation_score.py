"""Mutation score of the whole package (mutmut), per package against that package's own tests: killed / total.

    pip install -e ".[mutation]"
    python benchmarks/mutation_score.py --package data        # mutate src/tvdim/data, run tests/data only
    python benchmarks/mutation_score.py --package data --no-run   # the table of that package's last run
    python benchmarks/mutation_score.py --package data --rerun-survivors --survivors
    python benchmarks/mutation_score.py --table               # one table over every package run so far

Packages: losses, methods, eval, data, train, models, and ``top`` (the modules directly under src/tvdim: api, cli,
config, demo, embed, hub, report, errors) against the test files directly under tests/. Each package runs in its
own copy of the repository, ``benchmarks/out/mutation/<package>/`` (source, tests and a pyproject.toml whose
``[tool.mutmut]`` names that package and its test folder), so packages can run side by side in background
processes on a small machine and each keeps its own ``mutants/`` results (mutmut reruns only what changed; a new
test does not make it rerun a mutant it already judged: use ``--rerun-survivors``, or ``--clean``). ``mutmut show
NAME``, run inside that folder, prints one mutant's diff. CPU heavy (tens of minutes per package on 2 cores): CI
does not run it. A mutant counts as killed when a test failed or timed out on it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "out" / "mutation"
# package -> (files mutmut mutates, files it leaves alone, tests it runs against them); mutmut matches with
# fnmatch, whose * crosses folders, so "top" excludes the subpackages explicitly
SUBPACKAGES = ("losses", "methods", "eval", "data", "train", "models")
PACKAGES: dict[str, tuple[list[str], list[str], list[str]]] = {
    **{name: ([f"src/tvdim/{name}/*"], [], [f"tests/{name}"]) for name in SUBPACKAGES},
    "top": (["src/tvdim/*.py"], [f"src/tvdim/{name}/*" for name in SUBPACKAGES], ["tests/test_*.py"]),
}
DETECTED = ("killed", "timeout")


def package_dir(package: str) -> Path:
    return WORK / package


def mutmut_section(package: str, root: Path = ROOT) -> str:
    """The ``[tool.mutmut]`` table for one package (test globs expanded: mutmut passes them to pytest as given)."""
    mutate, skip, tests = PACKAGES[package]
    selection = sorted(str(t.relative_to(root)) for pattern in tests for t in root.glob(pattern))
    quote = lambda items: "[" + ", ".join(f'"{i}"' for i in items) + "]"  # noqa: E731
    return ("[tool.mutmut]\nsource_paths = [\"src/\"]\n"
            f"only_mutate = {quote(mutate)}\ndo_not_mutate = {quote(skip)}\n"
            f"pytest_add_cli_args_test_selection = {quote(selection)}\n")


def with_section(pyproject: str, section: str) -> str:
    """``pyproject`` with its ``[tool.mutmut]`` table (up to the next table or the end) replaced by ``section``."""
    stripped = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", pyproject)
    return stripped.rstrip("\n") + "\n\n" + section


def prepare(package: str, clean: bool) -> Path:
    """Copy src/, tests/ and pyproject.toml into the package's folder (keeping its mutants/ unless ``clean``)."""
    work = package_dir(package)
    if clean and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests"):
        if (work / name).exists():
            shutil.rmtree(work / name)
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    text = (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(with_section(text, mutmut_section(package)))
    return work


def run_mutmut(work: Path, children: int, names: list[str] | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # mutmut puts its mutated copy of src/ on the path itself
    cmd = ["mutmut", "run", "--max-children", str(children), *(names or [])]
    code = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL if names else None).returncode
    if code != 0:
        sys.exit(f"mutation_score: mutmut run in {work} exited with status {code}")


def read_results(work: Path) -> dict[str, str]:
    """Mutant name -> status (killed, survived, no tests, timeout, suspicious, ...) from ``mutmut results``."""
    if not (work / "mutants").is_dir():
        return {}
    out = subprocess.run(["mutmut", "results", "--all", "true"], cwd=work, capture_output=True, text=True,
                         check=True).stdout
    status = {}
    for line in out.splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and name.startswith("tvdim."):
            status[name] = state
    return status


def package_of(name: str) -> str:
    """``tvdim.data.formats.wds.x_read__mutmut_3`` -> ``tvdim.data``; ``tvdim.hub.x_f__mutmut_1`` -> ``tvdim (top)``."""
    parts = name.split(".")
    return f"tvdim.{parts[1]}" if len(parts) > 2 and parts[1] in SUBPACKAGES else "tvdim (top)"


def table(status: dict[str, str]) -> str:
    by_pkg: dict[str, Counter] = defaultdict(Counter)
    for name, state in status.items():
        by_pkg[package_of(name)][state] += 1
    states = sorted({s for c in by_pkg.values() for s in c} - set(DETECTED))
    head = ["package", "killed", "timeout", *states, "total", "score"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total: Counter = Counter()
    for pkg in sorted(by_pkg):
        c = by_pkg[pkg]
        total.update(c)
        lines.append(_row(pkg, c, states))
    lines.append(_row("all", total, states))
    return "\n".join(lines)


def _row(name: str, c: Counter, states: list[str]) -> str:
    n = sum(c.values())
    killed = sum(c[s] for s in DETECTED)
    cells = [name, str(c["killed"]), str(c["timeout"]), *(str(c[s]) for s in states), str(n),
             f"{killed} / {n} = {100 * killed / max(n, 1):.1f} %"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", choices=sorted(PACKAGES), help="the package to mutate (its own tests run)")
    ap.add_argument("--table", action="store_true", help="print one table over every package's last run")
    ap.add_argument("--no-run", action="store_true", help="only read the last run's results")
    ap.add_argument("--clean", action="store_true", help="forget the package's earlier results first")
    ap.add_argument("--rerun-survivors", action="store_true", help="rerun only the mutants that survived last time")
    ap.add_argument("--survivors", action="store_true", help="list the mutants that no test killed")
    ap.add_argument("--children", type=int, default=1, help="parallel mutmut workers (default 1)")
    args = ap.parse_args(argv)
    if args.table:
        status = {k: v for pkg in PACKAGES for k, v in read_results(package_dir(pkg)).items()}
    elif args.package is None:
        ap.error("give --package NAME (one of: " + ", ".join(sorted(PACKAGES)) + ") or --table")
    else:
        work = package_dir(args.package) if args.no_run else prepare(args.package, args.clean)
        if args.rerun_survivors:
            survivors = [n for n, state in read_results(work).items() if state not in DETECTED]
            if survivors:
                run_mutmut(work, args.children, survivors)
        elif not args.no_run:
            run_mutmut(work, args.children)
        status = read_results(work)
    if not status:
        sys.exit("mutation_score: no mutmut results yet: run with --package NAME first")
    print(table(status))
    if args.survivors:
        for name, state in sorted(status.items()):
            if state not in DETECTED:
                print(f"{state}: {name}")


if __name__ == "__main__":
    main()
