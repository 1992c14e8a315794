"""Imports point one way: entry points -> smbwm.game/collection/policy -> agents -> envs -> models/data/levels
-> utilities. Read from the source (every import, including those inside functions)."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "smbwm"

# Lower layers never import higher ones; within a layer, imports must not form a cycle.
# The files at the top of src/ are entry points: anything may sit below them, nothing imports them.
LAYERS = {
    "utils": 0, "actions": 0, "stages": 0,
    "data": 1, "models": 1, "levels": 1,
    "envs": 2, "evaluation": 2,
    "agents": 3, "training": 3,
    "collection": 4, "policy": 4, "game": 4, "datatools": 4,
    "serving": 5,
}


def unit(path: Path, pkg: Path) -> str:
    return path.relative_to(pkg).parts[0].removesuffix(".py")


def imported_names(node: ast.AST) -> list[str]:
    """Dotted names an import statement brings in; `from smbwm import actions` counts as smbwm.actions."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        if node.module == PACKAGE:
            return [f"{PACKAGE}.{a.name}" for a in node.names]
        return [node.module]
    return []


def imports_between_units(src: Path = SRC) -> dict[str, set[str]]:
    """unit of the package -> units it imports; an entry point (a top-level module of src/) counts as a unit
    named after its file, so a library module that imports one shows up."""
    pkg = src / PACKAGE
    units = {p.name.removesuffix(".py") for p in pkg.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    entry_points = {p.stem for p in src.glob("*.py")}
    edges: dict[str, set[str]] = defaultdict(set)
    for f in pkg.rglob("*.py"):
        if f.parent == pkg and f.name == "__init__.py":
            continue
        here = unit(f, pkg)
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            for name in imported_names(node):
                parts = name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1 and parts[1] in units and parts[1] != here:
                    edges[here].add(parts[1])
                elif parts[0] in entry_points:
                    edges[here].add(parts[0])
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


def test_the_checker_sees_upward_imports_cycles_and_entry_points(tmp_path):
    pkg = tmp_path / PACKAGE
    for d in (pkg, pkg / "low", pkg / "high"):
        d.mkdir()
        (d / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from smbwm.high import b\n")   # a lazy import counts too
    (pkg / "high" / "__init__.py").write_text("from smbwm import low\n")
    (pkg / "tool.py").write_text("import main\n")
    (tmp_path / "main.py").write_text("")
    edges = imports_between_units(tmp_path)
    assert edges == {"low": {"high"}, "high": {"low"}, "tool": {"main"}}
    assert cycles_in(edges) == [["high", "low", "high"]]


def sys_path_edits(files) -> list[str]:
    return [f"{f.relative_to(ROOT)}:{node.lineno}" for f in files
            for node in ast.walk(ast.parse(f.read_text(), str(f)))
            if isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys"]


def test_nothing_edits_sys_path():
    """The package is installed (`pip install -e .`), and `python src/x.py` has src/ on the path already."""
    files = [*SRC.rglob("*.py"), *(ROOT / "scripts").glob("*.py"), *(ROOT / "tests").rglob("*.py")]
    assert sys_path_edits(files) == []


def test_library_imports_are_absolute():
    relative = [f"{f.relative_to(ROOT)}:{node.lineno}" for f in (SRC / PACKAGE).rglob("*.py")
                for node in ast.walk(ast.parse(f.read_text(), str(f)))
                if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert relative == []
