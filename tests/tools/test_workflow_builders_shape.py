"""The workflow builders' shape (issue 24): ``common`` and ``graph`` import no family, the families
(``sd35``, ``flux``, ``sdxl``) import only those two, the combinations import families, no module
imports a sibling's ``_private`` name, and the package's import graph has no circle."""
from __future__ import annotations

import ast

import pytest

import workflow_builders
from harness.paths import DEV

PACKAGE = DEV / "workflow_builders"
FAMILIES = {"sd35", "flux", "sdxl"}
SHARED = {"common", "graph"}


def sibling_imports(module: str) -> dict[str, set[str]]:
    """``{sibling module: names imported from it}`` for one module of the package."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or node.module == "workflow_builders"
                                                 or (node.module or "").startswith("workflow_builders.")):
            target = (node.module or "").removeprefix("workflow_builders").lstrip(".")
            if target:
                found.setdefault(target, set()).update(a.name for a in node.names)
            else:  # from . import flux, sd35
                for alias in node.names:
                    found.setdefault(alias.name, set())
    return found


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))


def test_every_contributing_module_is_looked_up():
    assert set(workflow_builders.MODULES) == set(MODULES) - SHARED - {"write", "templates"}


@pytest.mark.parametrize("module", MODULES)
def test_imports_follow_the_layers(module):
    imports = sibling_imports(module)
    if module in SHARED:
        assert not set(imports) - SHARED, imports
    elif module in FAMILIES:
        assert set(imports) <= SHARED, f"a family imports only common/graph: {imports}"
    for names in imports.values():
        assert not [n for n in names if n.startswith("_")], f"{module} imports private names: {names}"


def test_no_import_circle():
    graph = {m: set(sibling_imports(m)) & set(MODULES) for m in MODULES}

    def reaches(start: str, goal: str, seen: set) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert not [m for m in MODULES if reaches(m, m, set())]


def test_no_module_over_400_lines():
    assert all(len(p.read_text().splitlines()) <= 400 for p in PACKAGE.glob("*.py"))
