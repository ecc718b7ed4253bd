"""Mutation score of the loss, method and evaluation code (mutmut), per package: killed / total.

    pip install -e ".[mutation]"
    python benchmarks/mutation_score.py              # run mutmut (one process), then print the table
    python benchmarks/mutation_score.py --no-run     # print the table of the last run (mutants/)
    python benchmarks/mutation_score.py --rerun-survivors  # after adding tests: rerun only the survivors
    python benchmarks/mutation_score.py --survivors  # also list the mutants no test killed

What is mutated and which tests run is in pyproject.toml, ``[tool.mutmut]``: src/tvdim/losses, methods and eval
against tests/losses, tests/methods and tests/eval only. mutmut keeps its results in ``mutants/`` and reruns only
what changed (a new test does not make it rerun a mutant it already judged: use ``--rerun-survivors``, or delete
``mutants/`` for a clean run); ``mutmut show NAME`` prints one mutant's diff. CPU heavy (tens of minutes on
2 cores): CI does not run it. A mutant counts as killed when a test failed or timed out on it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tvdim.losses", "tvdim.methods", "tvdim.eval")
DETECTED = ("killed", "timeout")


def run_mutmut(children: int, names: list[str] | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # mutmut puts its mutated copy of src/ on the path itself
    cmd = ["mutmut", "run", "--max-children", str(children), *(names or [])]
    code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL if names else None).returncode
    if code != 0:
        sys.exit(f"mutation_score: mutmut run exited with status {code}")


def read_results() -> dict[str, str]:
    """Mutant name -> status (killed, survived, no tests, timeout, suspicious, ...) from ``mutmut results``."""
    out = subprocess.run(["mutmut", "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    status = {}
    for line in out.splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and name.startswith("tvdim."):
            status[name] = state
    if not status:
        sys.exit("mutation_score: no mutmut results in mutants/: run without --no-run first")
    return status


def package_of(name: str) -> str:
    return next((p for p in PACKAGES if name.startswith(p + ".")), name.split(".x_")[0])


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
    ap.add_argument("--no-run", action="store_true", help="only read the last run's results")
    ap.add_argument("--rerun-survivors", action="store_true", help="rerun only the mutants that survived last time")
    ap.add_argument("--survivors", action="store_true", help="list the mutants that no test killed")
    ap.add_argument("--children", type=int, default=1, help="parallel mutmut workers (default 1)")
    args = ap.parse_args(argv)
    if args.rerun_survivors:
        survivors = [name for name, state in read_results().items() if state not in DETECTED]
        if survivors:
            run_mutmut(args.children, survivors)
    elif not args.no_run:
        run_mutmut(args.children)
    status = read_results()
    print(table(status))
    if args.survivors:
        for name, state in sorted(status.items()):
            if state not in DETECTED:
                print(f"{state}: {name}")


if __name__ == "__main__":
    main()
