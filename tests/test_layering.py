"""The package is layered: each module imports only from its own layer or the layers below, and no two modules
import each other, directly or through others, counting imports inside functions (docs/ARCHITECTURE.md)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# bottom -> top; a module belongs to the first layer with a prefix of its dotted name
LAYERS: list[tuple[str, ...]] = [
    ("tvdim.errors", "tvdim.method_spec", "tvdim.registry"),
    ("tvdim.config",),
    ("tvdim.distributed",),
    ("tvdim.losses", "tvdim.models"),
    ("tvdim.data",),
    ("tvdim.methods",),
    ("tvdim.train",),
    ("tvdim.loading",),
    ("tvdim.eval",),
    ("tvdim.hub",),
    ("tvdim.api",),
    ("tvdim.embed", "tvdim.report", "tvdim.score_pairs", "tvdim.demo"),
    ("tvdim.cli",),
]


def layer_of(module: str) -> int:
    """Index in LAYERS (the package ``tvdim`` itself, a lazy facade, is above every layer)."""
    if module == "tvdim":
        return len(LAYERS)
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/ARCHITECTURE.md")


def modules(src: Path = SRC) -> dict[str, Path]:
    out = {}
    for path in sorted((src / "tvdim").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the tvdim modules it imports anywhere in its body (top level, functions, TYPE_CHECKING blocks),
    plus the packages whose ``__init__`` such an import runs."""
    mods = modules(src)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    targets.add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        found = set()
        for t in targets:
            while t.startswith("tvdim"):
                if t in mods:
                    found.add(t)
                t = t.rpartition(".")[0]
        graph[name] = {t for t in found if t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))


def test_no_import_cycle_counting_function_local_imports():
    assert cycles(imports()) == []


def test_no_module_imports_from_a_layer_above_it():
    assert upward(imports()) == []


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_the_checks_see_a_planted_cycle_and_a_planted_upward_import(tmp_path):
    """The checks themselves: a function-local import that closes a cycle, and an upward one, are both found."""
    pkg = tmp_path / "tvdim"
    (pkg / "losses").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text("def f():\n    from .losses import nce\n")
    (pkg / "losses" / "__init__.py").write_text("")
    (pkg / "losses" / "nce.py").write_text("from ..config import f\n")
    graph = imports(tmp_path)
    assert cycles(graph) == [["tvdim.config", "tvdim.losses.nce"]]
    assert upward(graph) == ["tvdim.config -> tvdim.losses", "tvdim.config -> tvdim.losses.nce"]


@pytest.mark.parametrize("module, absent", [
    ("tvdim.losses", ("tvdim.hub", "tvdim.train", "tvdim.data", "webdataset", "huggingface_hub", "tokenizers")),
    ("tvdim.models.backbones", ("tvdim.hub", "tvdim.train", "tvdim.data", "webdataset", "huggingface_hub")),
    ("tvdim", ("torch", "tvdim.hub", "tvdim.train", "webdataset")),
])
def test_importing_a_low_layer_loads_nothing_above_it(module, absent):
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert not [m for m in loaded if m.split(".")[0] in absent or any(m.startswith(a + ".") or m == a for a in absent)]
