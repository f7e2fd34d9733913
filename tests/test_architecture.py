"""The import rules of ARCHITECTURE.md, checked on the source with ``ast`` (nothing is imported or executed).

Every ``import`` and ``from … import`` under ``mnemostore/`` counts: relative ones, ones inside functions (a lazy
import is still a dependency) and ones under ``if TYPE_CHECKING:`` (held to the same rules, except that a
cycle through them is not an import cycle: they never run). The rules:

* layering: a unit (a subpackage of ``mnemostore``, or one of the leaf modules ``errors``, ``config``,
  ``_version``) imports only units of a lower layer in ``LAYERS``, never one beside or above it;
* no import cycle between units, and none between modules;
* no private module of another unit: a module (or name) whose dotted path has a part starting with ``_`` below
  the unit, e.g. ``mnemostore.store._database``; a unit publishes what others may use in its ``__init__`` or in
  a public module.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "mnemostore"
SOURCE_ROOT = Path(__file__).resolve().parent.parent

# Higher imports lower, never the reverse; units of one layer do not import each other.
LAYERS: dict[str, int] = {
    "_version": 0,  # leaf: the version string
    "errors": 0,  # leaf: the exception hierarchy
    "config": 1,  # leaf: Settings
    "domain": 2,  # plain domain objects and ids
    "search": 3,  # embedders, vector index, query terms, ranking: no SQL
    "cache": 3,  # Redis / in-process cache, events
    "memory": 3,  # dedup, retention, summarisers: no I/O
    "store": 4,  # tables, repositories, unit of work, search statements
    "client": 4,  # Client / AsyncClient: the HTTP service's API over httpx; domain, errors, search types only
    "ops": 5,  # migrations, backup, health, analytics
    "migrations": 5,  # Alembic environment and revisions
    "service": 6,  # AsyncMnemoStore / MnemoStore: the use cases
    "facade": 7,  # Memory / AsyncMemory: the three-line memory API over a tenant store
    "integrations": 8,  # MCP, LangGraph, LangChain over the service and the facade; the api mounts MCP
    "api": 9,  # HTTP
    "cli": 10,  # command line (``serve`` runs the api, ``mcp`` the MCP server over stdio)
    PACKAGE: 11,  # the root ``__init__``: the public facade, which no unit imports
    "__main__": 11,  # ``python -m mnemostore``: runs the CLI
}


@dataclass(frozen=True, slots=True)
class Import:
    file: str  # path relative to the repository root, with forward slashes
    line: int
    module: str  # the importing module, dotted
    target: str  # the imported module (or, for ``from m import name`` of a non-module, ``m.name``)
    via_module: str  # the module the target lives in (``target`` itself when it is a module)
    type_only: bool = False  # under ``if TYPE_CHECKING:``: read by type checkers, never run


@dataclass(frozen=True, slots=True)
class Violation:
    file: str
    line: int
    target: str
    rule: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: imports {self.target}: {self.rule}"


def module_name(path: str) -> str:
    """``mnemostore/store/_tables.py`` -> ``mnemostore.store._tables``; a package's ``__init__`` is the package."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_sources(root: Path = SOURCE_ROOT) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted((root / PACKAGE).rglob("*.py"))
    }


def collect_imports(sources: Mapping[str, str]) -> list[Import]:
    """Every import of ``mnemostore`` modules in ``sources`` ({path: text}), at any depth of the syntax tree."""
    modules = {module_name(path) for path in sources}
    found: list[Import] = []
    for path, text in sources.items():
        this = module_name(path)
        package = this if path.endswith("__init__.py") else this.rpartition(".")[0]
        tree = ast.parse(text, filename=path)
        type_only = _type_checking_imports(tree)
        for node in ast.walk(tree):
            only = id(node) in type_only
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _ours(alias.name):
                        found.append(Import(path, node.lineno, this, alias.name, alias.name, only))
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, package)
                if not _ours(base):
                    continue
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    if candidate in modules:  # ``from pkg import submodule``
                        found.append(Import(path, node.lineno, this, candidate, candidate, only))
                    elif alias.name == "*" or not alias.name.startswith("_") or alias.name.startswith("__"):
                        found.append(Import(path, node.lineno, this, base, base, only))
                    else:  # a private name of ``base``
                        found.append(Import(path, node.lineno, this, candidate, base, only))
    return list(dict.fromkeys(found))  # one per (line, target): ``from m import a, b`` is one import of m


def _type_checking_imports(tree: ast.AST) -> set[int]:
    """Ids of the import statements inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) bodies."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}:
            for statement in node.body:
                found.update(id(n) for n in ast.walk(statement) if isinstance(n, ast.Import | ast.ImportFrom))
    return found


def _ours(dotted: str) -> bool:
    return dotted == PACKAGE or dotted.startswith(PACKAGE + ".")


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def unit_of(module: str) -> str:
    """The layering unit of a module: ``mnemostore.store._tables`` -> ``store``; the root package -> itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def private_part(module: str) -> str | None:
    """The first private part of ``module`` below its unit, if any (``mnemostore.store._tables`` -> ``_tables``)."""
    for part in module.split(".")[2:]:
        if part.startswith("_") and not part.startswith("__"):
            return part
    return None


def check(imports: Iterable[Import]) -> list[Violation]:
    imports = list(imports)
    violations: list[Violation] = []
    unit_edges: dict[tuple[str, str], Import] = {}
    for imp in imports:
        source, target = unit_of(imp.module), unit_of(imp.target)
        for unit in (source, target):
            if unit not in LAYERS:
                violations.append(Violation(imp.file, imp.line, imp.target, f"unit {unit!r} is not in LAYERS"))
        if source == target or source not in LAYERS or target not in LAYERS:
            continue
        unit_edges.setdefault((source, target), imp)
        if LAYERS[target] >= LAYERS[source]:
            where = "beside" if LAYERS[target] == LAYERS[source] else "above"
            rule = f"layering: {source} (layer {LAYERS[source]}) may not import {target}, {where} it"
            violations.append(Violation(imp.file, imp.line, imp.target, rule))
        private = private_part(imp.target)
        if private is not None:
            rule = f"private: {private} is private to {target}; import what {target} exports instead"
            violations.append(Violation(imp.file, imp.line, imp.target, rule))
    module_edges: dict[tuple[str, str], Import] = {}
    for imp in imports:
        if imp.module != imp.via_module and not imp.type_only:
            module_edges.setdefault((imp.module, imp.via_module), imp)
    for kind, edges in (("package", unit_edges), ("module", module_edges)):
        for cycle in _cycles(set(edges)):
            rule = f"{kind} cycle: " + " -> ".join(cycle)
            for step in itertools.pairwise(cycle):  # reported at an import of each step of the cycle
                imp = edges[step]
                violations.append(Violation(imp.file, imp.line, imp.target, rule))
    return violations


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """One cycle (closed: first node repeated last) per strongly connected component of more than one node."""
    graph: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graphs are small, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return [_cycle_in(sorted(component), graph) for component in components]


def _cycle_in(component: list[str], graph: Mapping[str, list[str]]) -> list[str]:
    """A path from the component's first node back to itself, inside the component (breadth first)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in graph[node]:
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component of >1 node has one


def violations_of(sources: Mapping[str, str]) -> list[Violation]:
    return check(collect_imports(sources))


# -- the tree as it is ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return read_sources()


def test_every_unit_is_placed(sources: dict[str, str]) -> None:
    units = {unit_of(module_name(path)) for path in sources}
    assert units <= set(LAYERS), f"add to LAYERS: {sorted(units - set(LAYERS))}"


def test_the_tree_keeps_every_import_rule(sources: dict[str, str]) -> None:
    found = violations_of(sources)
    assert not found, "import rule broken (see ARCHITECTURE.md):\n" + "\n".join(map(str, found))


# -- the checker itself, on synthetic sources -----------------------------------------------------------------


def _with(sources: dict[str, str], path: str, text: str) -> list[Violation]:
    return [v for v in violations_of({**sources, path: text}) if v.file == path]


def test_a_lower_layer_importing_a_higher_one_is_reported(sources: dict[str, str]) -> None:
    found = _with(sources, "mnemostore/store/_evil.py", "from mnemostore.service.store_async import AsyncMnemoStore\n")
    rules = [v.rule for v in found]
    assert any(r.startswith("layering: store (layer 4) may not import service") for r in rules), found
    assert any(r.startswith("package cycle:") and "store" in r and "service" in r for r in rules), found
    assert all(v.line == 1 for v in found)
    assert str(found[0]).startswith("mnemostore/store/_evil.py:1: imports mnemostore.service.store_async: ")


def test_units_of_one_layer_may_not_import_each_other(sources: dict[str, str]) -> None:
    found = _with(sources, "mnemostore/cache/_evil.py", "from mnemostore.search import ItemKind\n")
    assert [v.rule for v in found] == ["layering: cache (layer 3) may not import search, beside it"]


def test_a_private_module_of_another_unit_is_reported(sources: dict[str, str]) -> None:
    found = _with(sources, "mnemostore/api/_evil.py", "from mnemostore.store._database import Database\n")
    assert [(v.line, v.target, v.rule.split(":")[0]) for v in found] == [(1, "mnemostore.store._database", "private")]
    found = _with(sources, "mnemostore/api/_evil.py", "from mnemostore.cache import _codec\n")
    assert [(v.target, v.rule.split(":")[0]) for v in found] == [("mnemostore.cache._codec", "private")]
    found = _with(sources, "mnemostore/api/_evil.py", "import mnemostore.ops._archive as archive\n")
    assert [v.target for v in found] == ["mnemostore.ops._archive"]


def test_imports_are_found_in_functions_type_checking_blocks_and_relative_form(sources: dict[str, str]) -> None:
    text = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from mnemostore.api import create_app\n"
        "def f():\n"
        "    from ..cli import main\n"
        "    return main\n"
        "from .. import store\n"
    )
    found = _with(sources, "mnemostore/ops/_evil.py", text)
    layering = sorted((v.line, v.target) for v in found if v.rule.startswith("layering"))
    assert layering == [(3, "mnemostore.api"), (5, "mnemostore.cli.main")]
    assert not [v for v in found if v.target == "mnemostore.store"]  # ops may import store


def test_own_private_modules_and_the_leaves_are_fine(sources: dict[str, str]) -> None:
    text = (
        "from mnemostore.ops import _archive\nfrom mnemostore._version import __version__\nimport mnemostore.errors\n"
    )
    assert _with(sources, "mnemostore/ops/_fine.py", text) == []


def test_importing_the_root_package_is_reported(sources: dict[str, str]) -> None:
    found = _with(sources, "mnemostore/ops/_evil.py", "from mnemostore import __version__\n")
    layering, cycle = (v.rule for v in found)
    assert layering == "layering: ops (layer 5) may not import mnemostore, above it"
    # The root imports every unit, so the cycle found may pass through others (e.g. facade -> service -> ops).
    assert cycle.startswith("package cycle: ") and "ops -> mnemostore" in cycle


def test_a_module_cycle_inside_a_unit_is_reported(sources: dict[str, str]) -> None:
    extra = {
        "mnemostore/ops/_one.py": "from mnemostore.ops import _two\n",
        "mnemostore/ops/_two.py": "def f():\n    from mnemostore.ops._one import g\n",
    }
    unexpected = violations_of({**sources, **extra})
    cycle = "module cycle: mnemostore.ops._one -> mnemostore.ops._two -> mnemostore.ops._one"
    assert [(v.file, v.line, v.rule) for v in unexpected] == [
        ("mnemostore/ops/_one.py", 1, cycle),
        ("mnemostore/ops/_two.py", 2, cycle),
    ]


def test_a_new_private_import_in_the_service_is_reported(sources: dict[str, str]) -> None:
    path = "mnemostore/service/_history.py"
    found = _with(sources, path, sources[path] + "from mnemostore.ops._health_base import HealthStatus\n")
    assert [v.target for v in found] == ["mnemostore.ops._health_base"]


def test_a_cycle_through_type_checking_imports_only_is_not_an_import_cycle(sources: dict[str, str]) -> None:
    extra = {
        "mnemostore/ops/_one.py": "from mnemostore.ops import _two\n",
        "mnemostore/ops/_two.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mnemostore.ops._one import Thing\n"
        ),
    }
    assert violations_of({**sources, **extra}) == []
    # ... but a type-only import is still held to the layering and privacy rules.
    found = _with(sources, "mnemostore/ops/_two.py", extra["mnemostore/ops/_two.py"].replace("ops._one", "api._app"))
    assert sorted(v.rule.split(":")[0] for v in found) == ["layering", "package cycle", "private"]
