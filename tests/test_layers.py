"""Imports point one way: entry points -> game/collection/policy -> agents -> envs -> models/data/levels
-> utilities. Read from the source (every import, including those inside functions)."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lower layers never import higher ones; within a layer, imports must not form a cycle.
# Top-level modules of src/ not listed here are entry points: anything may sit below them, nothing imports them.
LAYERS = {
    "utils": 0, "actions": 0, "stages": 0,
    "data": 1, "models": 1, "levels": 1,
    "envs": 2, "evaluation": 2,
    "agents": 3, "training": 3,
    "collection": 4, "policy": 4, "game": 4, "datatools": 4,
    "serving": 5,
}


def unit(path: Path, src: Path = SRC) -> str:
    return path.relative_to(src).parts[0].removesuffix(".py")


def imports_between_units(src: Path = SRC) -> dict[str, set[str]]:
    units = {p.name.removesuffix(".py") for p in src.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    edges: dict[str, set[str]] = defaultdict(set)
    for f in src.rglob("*.py"):
        here = unit(f, src)
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                if top in units and top != here:
                    edges[here].add(top)
    return edges


def test_every_package_and_module_has_a_layer_or_is_an_entry_point():
    edges = imports_between_units()
    imported = set().union(*edges.values())
    entry_points = imported - set(LAYERS)
    assert not entry_points, f"entry points imported by library code (give them a layer or a package): {entry_points}"


def test_imports_never_point_up():
    up = [(a, b) for a, bs in imports_between_units().items() for b in bs
          if a in LAYERS and LAYERS[b] > LAYERS[a]]
    assert up == []


def cycles_in(edges: dict[str, set[str]]) -> list[list[str]]:
    seen, stack, cycles = set(), [], []

    def visit(n: str) -> None:
        if n in stack:
            cycles.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            visit(m)
        stack.pop()

    for n in sorted(edges):
        visit(n)
    return cycles


def test_no_import_cycles_between_packages():
    assert cycles_in(imports_between_units()) == []


def test_the_checker_sees_upward_imports_and_cycles(tmp_path):
    (tmp_path / "low").mkdir()
    (tmp_path / "low" / "__init__.py").write_text("")
    (tmp_path / "low" / "a.py").write_text("def f():\n    from high import b\n")   # a lazy import counts too
    (tmp_path / "high").mkdir()
    (tmp_path / "high" / "__init__.py").write_text("import low.a\n")
    edges = imports_between_units(tmp_path)
    assert edges == {"low": {"high"}, "high": {"low"}}
    assert cycles_in(edges) == [["high", "low", "high"]]
