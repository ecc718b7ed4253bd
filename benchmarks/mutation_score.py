"""Mutation score of the whole package (mutmut), per package against that package's own tests: killed / total.

    pip install -e ".[mutation]"
    python benchmarks/mutation_score.py --package data        # mutate src/tvdim/data, run tests/data only
    python benchmarks/mutation_score.py --package data --no-run   # the table of that package's last run
    python benchmarks/mutation_score.py --package data --rerun-survivors --survivors
    python benchmarks/mutation_score.py --table               # one table over every package run so far
    python benchmarks/mutation_score.py --package data --sample 80 --seed 18 --commit HEAD   # a uniform sample
    python benchmarks/mutation_score.py --table --sample 80 --seed 18 --no-run   # the sampled row of every package

Packages: losses, methods, eval, data, train, models, and ``top`` (the modules directly under src/tvdim: api, cli,
config, demo, embed, hub, report, errors) against the test files directly under tests/. Each package runs in its
own copy of the repository, ``benchmarks/out/mutation/<package>/`` (source, tests and a pyproject.toml whose
``[tool.mutmut]`` names that package and its test folder), so packages can run side by side in background
processes on a small machine and each keeps its own ``mutants/`` results (mutmut reruns only what changed; a new
test does not make it rerun a mutant it already judged: use ``--rerun-survivors``, or ``--clean``). ``mutmut show
NAME``, run inside that folder, prints one mutant's diff. CPU heavy (tens of minutes per package on 2 cores): CI
does not run it. A mutant counts as killed when a test failed or timed out on it.

``--sample N --seed S`` estimates a package's score when a full run does not fit the time: mutmut generates every
mutant of the package (and runs its stats phase, the package's tests once), N names are drawn uniformly without
replacement from the sorted list of all of them (``random.Random(S).sample``), only those run, and the score is
killed / N with a 95 % Wilson interval, next to the number of mutants in the package. ``--rerun-survivors`` (without
``--clean``) reruns only the drawn mutants that survived. ``--commit REV`` copies src/, tests/ and pyproject.toml as
committed at REV (``git archive``) instead of the working tree.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
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
# what tests read besides src/ and tests/ (tests/test_collection.py: .ci/ and README.md; tests/test_shipped_configs.py
# globs configs/*.yaml): copied into the package's folder and, by mutmut (also_copy), into its mutants/ folder
ALSO_COPY = (".ci", "configs", "README.md")
NO_MATCH = "tvdim.__mutation_score_generate_only__"  # a name no mutant has: mutmut generates, collects stats, stops
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def package_dir(package: str) -> Path:
    return WORK / package


def mutmut_section(package: str, root: Path = ROOT, deselect: tuple[str, ...] = ()) -> str:
    """The ``[tool.mutmut]`` table for one package (test globs expanded: mutmut passes them to pytest as given);
    ``deselect``: test ids pytest leaves out (``--deselect``), in every phase of the run."""
    mutate, skip, tests = PACKAGES[package]
    selection = sorted(str(t.relative_to(root)) for pattern in tests for t in root.glob(pattern))
    quote = lambda items: "[" + ", ".join(f'"{i}"' for i in items) + "]"  # noqa: E731
    args = [a for test in deselect for a in ("--deselect", test)]
    return ("[tool.mutmut]\nsource_paths = [\"src/\"]\n"
            f"only_mutate = {quote(mutate)}\ndo_not_mutate = {quote(skip)}\nalso_copy = {quote(ALSO_COPY)}\n"
            + (f"pytest_add_cli_args = {quote(args)}\n" if args else "")
            + f"pytest_add_cli_args_test_selection = {quote(selection)}\n")


def with_section(pyproject: str, section: str) -> str:
    """``pyproject`` with its ``[tool.mutmut]`` table (up to the next table or the end) replaced by ``section``."""
    stripped = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", pyproject)
    return stripped.rstrip("\n") + "\n\n" + section


def prepare(package: str, clean: bool, commit: str | None = None, deselect: tuple[str, ...] = ()) -> Path:
    """Copy src/, tests/, pyproject.toml and ``ALSO_COPY`` into the package's folder (keeping its mutants/ unless
    ``clean``), from the working tree or, with ``commit``, as committed there."""
    work = package_dir(package)
    if clean and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests", *ALSO_COPY):
        if (work / name).is_dir():
            shutil.rmtree(work / name)
        elif (work / name).exists():
            (work / name).unlink()
    if commit is None:
        for name in ("src", "tests", *ALSO_COPY):
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            elif (ROOT / name).exists():
                shutil.copy2(ROOT / name, work / name)
        text = (ROOT / "pyproject.toml").read_text()
    else:
        archive = subprocess.run(["git", "archive", "--format=tar", commit, "src", "tests", "pyproject.toml",
                                  *ALSO_COPY], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            text = tar.extractfile("pyproject.toml").read().decode()
            tar.extractall(work, members=[m for m in tar.getmembers() if m.name != "pyproject.toml"])
    # the test selection is globbed in the copy: with --commit, the committed tests, not the work tree's
    (work / "pyproject.toml").write_text(with_section(text, mutmut_section(package, work, deselect)))
    return work


def mutmut_env(work: Path) -> dict[str, str]:
    """The environment of a mutmut run in ``work``: one thread, and ``work/src`` on PYTHONPATH. mutmut puts its
    mutated copy of src/ first on the path of its own process and of the pytest it forks; a test that starts
    ``python -m tvdim...`` as a new process would otherwise import the editable install, the work tree's src/
    (another commit, or half an edit), and fail or pass on other code. Such a process runs the copy's code
    unmutated, so a mutant that only a new process could show survives."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(work / "src")
    return env


def run_mutmut(work: Path, children: int, names: list[str] | None = None) -> None:
    cmd = ["mutmut", "run", "--max-children", str(children), *(names or [])]
    out = subprocess.DEVNULL if names else None
    code = subprocess.run(cmd, cwd=work, env=mutmut_env(work), stdout=out).returncode
    if code != 0:
        sys.exit(f"mutation_score: mutmut run in {work} exited with status {code}")


def generate(work: Path, children: int) -> None:
    """Let mutmut generate every mutant and collect its stats without running any (it stops on a name that matches
    no mutant: that is the one failure accepted here)."""
    env = mutmut_env(work)
    done = subprocess.run(["mutmut", "run", "--max-children", str(children), NO_MATCH], cwd=work, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0 and "nothing matches" not in done.stdout + done.stderr:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        sys.exit(f"mutation_score: generating the mutants in {work} failed with status {done.returncode}")


def draw(names, n: int, seed: int) -> list[str]:
    """``n`` names drawn uniformly without replacement from the sorted ``names`` with ``random.Random(seed)``
    (all of them when there are fewer), sorted."""
    population = sorted(names)
    return sorted(random.Random(seed).sample(population, min(n, len(population))))


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion k / n (``z``: 1.96 for 95 %)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


SAMPLE_HEAD = ("| package | sampled | killed | score | 95 % interval | mutants in package | not killed |\n"
               "|---|---|---|---|---|---|---|")


def sample_row(package: str, sampled: dict[str, str], total: int) -> str:
    """One table row of a sampled run: ``sampled`` maps each drawn name to its status, ``total`` is the number of
    mutants in the package. Not killed: the count of each other status."""
    n = len(sampled)
    killed = sum(state in DETECTED for state in sampled.values())
    lo, hi = wilson(killed, n)
    rest = Counter(state for state in sampled.values() if state not in DETECTED)
    other = ", ".join(f"{c} {state}" for state, c in sorted(rest.items())) or "-"
    return (f"| {package} | {n} | {killed} | {100 * killed / max(n, 1):.1f} % | "
            f"{100 * lo:.1f} - {100 * hi:.1f} % | {total} | {other} |")


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
    ap.add_argument("--sample", type=int, metavar="N", help="run only N mutants drawn uniformly at random")
    ap.add_argument("--seed", type=int, default=0, help="seed of the --sample draw (default 0)")
    ap.add_argument("--commit", metavar="REV", help="mutate src/ and tests/ as committed at REV, not the work tree")
    ap.add_argument("--deselect", action="append", default=[], metavar="TEST_ID",
                    help="leave this test out (pytest --deselect; repeatable), e.g. one that fails on a busy machine")
    args = ap.parse_args(argv)
    if args.sample is not None:
        return main_sample(ap, args)
    if args.table:
        status = {k: v for pkg in PACKAGES for k, v in read_results(package_dir(pkg)).items()}
    elif args.package is None:
        ap.error("give --package NAME (one of: " + ", ".join(sorted(PACKAGES)) + ") or --table")
    else:
        work = package_dir(args.package) if args.no_run else prepare(args.package, args.clean, args.commit,
                                                                          tuple(args.deselect))
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


def to_run(names: list[str], status: dict[str, str], rerun_survivors: bool) -> list[str]:
    """The drawn names to run: all, or with ``rerun_survivors`` those the last run did not kill (after new tests,
    without --clean: the sample is the same while the package's code is)."""
    return [n for n in names if not rerun_survivors or status[n] not in DETECTED]


def main_sample(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.sample <= 0:
        ap.error("--sample takes a positive number of mutants")
    if args.table:
        packages = [pkg for pkg in sorted(PACKAGES) if (package_dir(pkg) / "mutants").is_dir()]
    elif args.package is None:
        ap.error("give --package NAME (one of: " + ", ".join(sorted(PACKAGES)) + ") or --table")
    else:
        packages = [args.package]
    rows = []
    for pkg in packages:
        if args.table or args.no_run:
            work = package_dir(pkg)
        else:
            work = prepare(pkg, args.clean, args.commit, tuple(args.deselect))
            generate(work, args.children)
        status = read_results(work)
        if not status:
            sys.exit(f"mutation_score: no mutants in {work}: run with --package {pkg} --sample N first")
        names = draw(status, args.sample, args.seed)
        if not (args.table or args.no_run):
            todo = to_run(names, status, args.rerun_survivors)
            if todo:
                run_mutmut(work, args.children, todo)
            status = read_results(work)
        sampled = {name: status[name] for name in names}
        rows.append(sample_row(pkg, sampled, len(status)))
        if args.survivors:
            for name in names:
                if status[name] not in DETECTED:
                    print(f"{status[name]}: {name}", file=sys.stderr)
    print(SAMPLE_HEAD)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
