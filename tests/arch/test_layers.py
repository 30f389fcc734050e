"""The house: layers import downward only, and no import cycles between modules.

The layer order is written once, here and in docs/architecture.md ("Layers"): a module
may import (at the top or lazily inside a function) only from its own layer or below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "convlab"

# Lowest first. A name is a top-level module or package of convlab.
LAYERS: list[set[str]] = [
    {"errors", "registry", "schema", "io", "usercode"},
    {"models", "optim"},
    {"data"},  # the data section's models validate against the registry of datasets
    {"config"},
    {"runs"},
    {"train", "track"},
    {"sweep"},
    {"analysis"},
    {"report"},
    {"studies"},
    {"commands", "cli", "__init__", "__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def unit_of(path: Path) -> str:
    """``src/convlab/train/loop.py`` -> ``train``; ``src/convlab/cli.py`` -> ``cli``."""
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["convlab", *parts])


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported convlab module) for every import, lazy ones included."""
    out = []
    pkg = module_name(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("convlab")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg[: len(pkg) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod == "convlab":  # from convlab import x: x is a submodule or the API
                out += [(node.lineno, f"convlab.{a.name}") for a in node.names]
            elif mod.startswith("convlab."):
                out.append((node.lineno, mod))
    return out


def sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "examples" not in p.parts)


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(p) for p in sources()}
    assert units - set(RANK) == set(), "add the new module or package to LAYERS"


def test_layers_import_downward_only() -> None:
    bad = []
    for path in sources():
        own = unit_of(path)
        for line, mod in imports_of(path):
            parts = mod.split(".")
            if len(parts) < 2:
                continue
            target = parts[1]
            if target not in RANK:  # `from convlab import __version__` and the like
                if own not in LAYERS[-1]:
                    bad.append(f"{path.relative_to(SRC)}:{line} imports the top-level API")
                continue
            if RANK[target] > RANK[own]:
                bad.append(f"{path.relative_to(SRC)}:{line}: {own} (layer {RANK[own]}) "
                           f"imports {mod} (layer {RANK[target]})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    names = {module_name(p) for p in sources()}
    for path in sources():
        me = module_name(path)
        deps = set()
        for _, mod in imports_of(path):
            while mod not in names and "." in mod:  # `from convlab.x import name`
                mod = mod.rsplit(".", 1)[0]
            if mod in names and mod != me and not me.startswith(mod + "."):
                deps.add(mod)
        graph[me] = deps
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


@pytest.mark.parametrize("graph,expected", [
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": set()}, None),
])
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list | None) -> None:
    assert find_cycle(graph) == expected
