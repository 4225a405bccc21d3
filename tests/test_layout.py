"""The package plan holds: layers import only downwards, no cycles, and nothing imports a command."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jaxcp"
# lowest first: a module may import its own package and those before it
LAYERS = ("core", "data", "model", "clinical", "training", "nas")
COMMANDS = ("synth", "prepare", "complexity", "search", "train", "crossval", "evaluate", "predict", "export")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def jaxcp_imports(path: Path) -> set[str]:
    """Every jaxcp module a file imports (`from jaxcp.a import b` counts jaxcp.a and jaxcp.a.b if it is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("jaxcp")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxcp"):
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists():
                    found.add(candidate)
    return found


LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


def test_every_library_module_lives_in_a_layer_package():
    assert {p.relative_to(PACKAGE).parts[0] for p in LIBRARY} == set(LAYERS)
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == sorted(("__init__", "__main__", *COMMANDS))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_imports_point_down_and_never_at_a_command(path):
    layer = LAYERS.index(path.relative_to(PACKAGE).parts[0])
    for name in jaxcp_imports(path):
        parts = name.split(".")
        assert not (len(parts) == 2 and parts[1] in COMMANDS), f"{path} imports the command {name}"
        if len(parts) > 1 and parts[1] in LAYERS:
            assert LAYERS.index(parts[1]) <= layer, f"{path} imports {name}, a layer above it"


def test_no_import_cycles_and_no_function_level_imports_of_jaxcp():
    graph = {module_name(p): {m for m in jaxcp_imports(p) if m != module_name(p)} for p in PACKAGE.rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                inner = [n for n in ast.walk(node)
                         if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("jaxcp")]
                assert not inner, f"{path}:{node.name} imports jaxcp inside a function"
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module, path):
        state[module] = 1
        for other in graph.get(module, ()):
            if state.get(other) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path, module, other])}")
            if other in graph and state.get(other) is None:
                visit(other, [*path, module])
        state[module] = 2

    for module in graph:
        if state.get(module) is None:
            visit(module, [])
