"""The project's own import graph: its circles, and imports of another module's private names.

Reads the source with `ast` and imports nothing it reads. Every import counts, wherever it stands
(module level, inside a function, under ``if TYPE_CHECKING``): an import moved into a function
still makes the two modules depend on each other.

The modules live in two namespaces, as they run:

* the pack: ComfyUI imports the repository root as a package, so the root ``__init__.py``,
  ``swd_core/`` and ``nodes/`` import each other relatively (``from .. import swd_core``);
* ``sys.path``: ``dev/`` and ``.host/pylib`` (where ``swd_core`` alone is importable), so the
  tooling imports ``harness``, ``bench``, ``workflow_builders``, ... and ``swd_core`` absolutely. The
  repository root never is on ``sys.path``: there a top-level ``nodes`` is ComfyUI's, not the pack's.

An edge ``a -> b`` is ``a`` importing ``b`` (``from b import x``, ``import b``; ``from p import m``
with ``m`` a module of package ``p`` is an edge to ``m``). A parent package that Python imports on
the way to a submodule is not an edge: ``from .common import x`` depends on ``common``, not on
the package's ``__init__``.

Private names: ``from m import _x`` where ``_x`` is a name defined in module ``m`` (not a
submodule) is reported: a name another module needs is public. A private module (``nodes/_api.py``)
may be imported by the modules of its own package only.

    PYTHONPATH=dev python3 -m harness.import_graph     # prints the circles and private imports; exit 1 if any
"""
from __future__ import annotations

import ast
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

#: Folders (relative to the repository root) whose modules belong to the pack package.
PACK_FOLDERS = ("swd_core", "nodes")
#: Folders put on ``sys.path`` by the tooling, and the packages under the repository root importable
#: from it (``.host/pylib`` holds ``swd_core`` alone).
PATH_FOLDERS = ("dev",)
PATH_PACKAGES = ("swd_core",)


@dataclass(frozen=True)
class Module:
    """One source file: ``path`` relative to the root, ``name`` dotted in ``namespace`` (``"pack"``
    or ``"path"``; the pack's root package is ``""``)."""

    path: str
    name: str
    namespace: str
    is_package: bool


@dataclass(frozen=True)
class PrivateImport:
    """``importer`` imports, at ``line``, the private ``name`` of ``module`` (both paths), or with
    ``name`` ``None`` the private ``module`` itself from outside its package."""

    importer: str
    line: int
    module: str
    name: str | None = None

    def __str__(self) -> str:
        what = f"{self.name} from {self.module}" if self.name else f"the private module {self.module}"
        return f"{self.importer}:{self.line} imports {what}"


@dataclass(frozen=True)
class Circle:
    """Modules that import each other: ``path``, a shortest circle ``[a, b, ..., a]`` from the
    first of them, and all ``modules`` of the group (sorted), which may be more."""

    path: list[str]
    modules: list[str]

    def __str__(self) -> str:
        others = sorted(set(self.modules) - set(self.path))
        return " -> ".join(self.path) + (f" (the same circle takes in {', '.join(others)})" if others else "")


def _dotted(relative: Path) -> tuple[str, bool]:
    parts = list(relative.with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def find_modules(root: Path, pack_folders=PACK_FOLDERS, path_folders=PATH_FOLDERS,
                 path_packages=PATH_PACKAGES) -> list[Module]:
    """Every project module under ``root``, once per namespace it is importable in."""
    modules = []
    if (root / "__init__.py").is_file():
        modules.append(Module("__init__.py", "", "pack", True))
    for folder in pack_folders:
        for file in sorted((root / folder).rglob("*.py")):
            name, is_package = _dotted(file.relative_to(root))
            rel = file.relative_to(root).as_posix()
            modules.append(Module(rel, name, "pack", is_package))
            if folder in path_packages:
                modules.append(Module(rel, name, "path", is_package))
    for folder in path_folders:
        for file in sorted((root / folder).rglob("*.py")):
            name, is_package = _dotted(file.relative_to(root / folder))
            modules.append(Module(file.relative_to(root).as_posix(), name, "path", is_package))
    return modules


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class Graph:
    """The import graph of the modules `find_modules` lists: `edges` (path -> imported paths) and
    `private_imports`."""

    def __init__(self, root: Path, modules: list[Module]):
        self.root = root
        self.by_name = {(m.namespace, m.name): m for m in modules}
        self.edges: dict[str, set[str]] = {m.path: set() for m in modules}
        self.private_imports: list[PrivateImport] = []
        read = set()
        for m in modules:  # a file in both namespaces is read once, in its first
            if m.path not in read:
                read.add(m.path)
                self._read(m)

    def _module(self, namespace: str, name: str) -> Module | None:
        return self.by_name.get((namespace, name))

    def _base(self, m: Module, node: ast.ImportFrom) -> str | None:
        """The dotted module ``from X import ...`` names, relative imports resolved; None if above the root."""
        if not node.level:
            return node.module
        package = m.name.split(".") if m.is_package else m.name.split(".")[:-1]
        package = [p for p in package if p]
        if node.level - 1 > len(package):
            return None
        base = package[:len(package) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def _namespace(self, m: Module, node: ast.stmt) -> str:
        return m.namespace if isinstance(node, ast.ImportFrom) and node.level else "path"

    def _edge(self, importer: Module, target: Module, line: int) -> None:
        self.edges[importer.path].add(target.path)
        parts = target.name.split(".")
        private = [i for i, part in enumerate(parts) if _is_private(part)]
        if private:  # a private module: for the modules of the package it is in
            package = ".".join(parts[:private[0]])
            if package and importer.name != package and not importer.name.startswith(package + "."):
                self.private_imports.append(PrivateImport(importer.path, line, target.path))

    def _read(self, m: Module) -> None:
        tree = ast.parse((self.root / m.path).read_text(encoding="utf-8"), filename=m.path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    for k in range(len(parts), 0, -1):  # the deepest project module named
                        target = self._module("path", ".".join(parts[:k]))
                        if target is not None:
                            self._edge(m, target, node.lineno)
                            break
            elif isinstance(node, ast.ImportFrom):
                base = self._base(m, node)
                if base is None:
                    continue
                namespace = self._namespace(m, node)
                for alias in node.names:
                    sub = self._module(namespace, f"{base}.{alias.name}" if base else alias.name)
                    if sub is not None:
                        self._edge(m, sub, node.lineno)
                        continue
                    target = self._module(namespace, base)
                    if target is None:
                        continue
                    if target.path != m.path:
                        self._edge(m, target, node.lineno)
                    if _is_private(alias.name):
                        self.private_imports.append(PrivateImport(m.path, node.lineno, target.path, alias.name))

    def cycles(self) -> list[Circle]:
        """One `Circle` per group of modules that import each other (strongly connected), sorted."""
        found = []
        for group in _strongly_connected(self.edges):
            if len(group) == 1 and group[0] not in self.edges[group[0]]:
                continue
            found.append(Circle(_shortest_cycle(self.edges, group[0], set(group)), group))
        return sorted(found, key=lambda c: c.modules)


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index, low, on_stack, stack, groups, counter = {}, {}, set(), [], [], 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups


def _shortest_cycle(edges: dict[str, set[str]], start: str, group: set[str]) -> list[str]:
    """Breadth-first from ``start`` back to it, inside ``group``."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(edges[node] & group):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if child not in parent:
                parent[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is in a circle but none leads back to it")


def check(root: Path, **folders) -> tuple[list[Circle], list[PrivateImport]]:
    """The circles and private-name imports among the modules under ``root`` (see `find_modules`)."""
    graph = Graph(root, find_modules(root, **folders))
    return graph.cycles(), sorted(graph.private_imports, key=lambda p: (p.importer, p.line, p.name or ""))


def report(cycles: list[Circle], private: list[PrivateImport]) -> str:
    """One line per circle (``a -> b -> a``) and per private import; empty when there are none."""
    lines = [f"import circle: {c}" for c in cycles]
    lines += [f"private import: {p}" for p in private]
    return "\n".join(lines)


def main() -> int:
    root = Path(__file__).resolve().parents[2]
    text = report(*check(root))
    print(text or "no import circles, no private imports")
    return 1 if text else 0


if __name__ == "__main__":
    sys.exit(main())
