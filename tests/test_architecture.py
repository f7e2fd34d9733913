"""The import rules of ARCHITECTURE.md, checked on the source with ``ast`` (nothing is imported or executed).

Every ``import`` and ``from … import`` under ``mnemostore/`` counts: relative ones, ones inside functions (a lazy
import is still a dependency) and ones under ``if TYPE_CHECKING:`` (held to the same rules). The rules:

* layering: a unit (a subpackage of ``mnemostore``, or one of the leaf modules ``errors``, ``config``,
  ``_version``) imports only units of a lower layer in ``LAYERS``, never one beside or above it;
* no import cycle between units, and none between modules;
* no private module of another unit: a module (or name) whose dotted path has a part starting with ``_`` below
  the unit, e.g. ``mnemostore.store._database``; a unit publishes what others may use in its ``__init__`` or in
  a public module.

``ALLOWLIST`` names the violations that remain in ``mnemostore/service`` (and in the root ``__init__`` and
``api/routes/events.py``, which read ``service._base``) until the service is switched to the public names; it
must only shrink: an entry that no longer occurs fails the test too.
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
    "ops": 5,  # migrations, backup, health, analytics
    "migrations": 5,  # Alembic environment and revisions
    "service": 6,  # AsyncMnemoStore / MnemoStore: the use cases
    "api": 7,  # HTTP
    "cli": 8,  # command line (``serve`` runs the api)
    PACKAGE: 9,  # the root ``__init__``: the public facade, which no unit imports
}

# Violations that remain in mnemostore/service until it is switched to the public names (ARCHITECTURE.md);
# (file, imported module or name). Remove each entry with the import it names; the list must end empty.
ALLOWLIST: frozenset[tuple[str, str]] = frozenset(
    [
        # root __init__: UNSET, list_cursor -> from mnemostore.service (to be exported by service/__init__)
        ("mnemostore/__init__.py", "mnemostore.service._base"),
        # api/routes/events.py: history_cursor -> from mnemostore.service (to be exported by service/__init__)
        ("mnemostore/api/routes/events.py", "mnemostore.service._base"),
        # _agent (both twins): module cycle store -> _agent -> _scope -> store (_scope's TYPE_CHECKING import of the
        #   store class)
        ("mnemostore/service/_agent.py", "mnemostore.service._scope"),
        ("mnemostore/service/_agent_async.py", "mnemostore.service._scope_async"),
        # _base (both twins): encode_cursor, decode_cursor -> mnemostore.store
        ("mnemostore/service/_base.py", "mnemostore.store._cursors"),
        # _channels (both twins): _flags, _ratelimit -> mnemostore.cache.flags / .ratelimit; codecs -> mnemostore.cache;
        #   ChannelSession etc. -> mnemostore.cache
        ("mnemostore/service/_channels.py", "mnemostore.cache._cache"),
        ("mnemostore/service/_channels.py", "mnemostore.cache._flags"),
        ("mnemostore/service/_channels.py", "mnemostore.cache._ratelimit"),
        ("mnemostore/service/_channels.py", "mnemostore.cache._types"),
        ("mnemostore/service/_channels_async.py", "mnemostore.cache._cache_async"),
        ("mnemostore/service/_channels_async.py", "mnemostore.cache._flags"),
        ("mnemostore/service/_channels_async.py", "mnemostore.cache._ratelimit"),
        ("mnemostore/service/_channels_async.py", "mnemostore.cache._types"),
        # _conversations (both twins): EventType etc. -> mnemostore.cache; ItemKind -> mnemostore.search
        ("mnemostore/service/_conversations.py", "mnemostore.cache._types"),
        ("mnemostore/service/_conversations.py", "mnemostore.search._types"),
        ("mnemostore/service/_conversations_async.py", "mnemostore.cache._types"),
        ("mnemostore/service/_conversations_async.py", "mnemostore.search._types"),
        # _core (both twins): cache names -> mnemostore.cache (build_cache -> AsyncCache.from_settings); search, store
        #   names -> their packages; uow.index_jobs, uow.ensure_pg_vectors(dim)
        ("mnemostore/service/_core.py", "mnemostore.cache._cache"),
        ("mnemostore/service/_core.py", "mnemostore.search._embedders"),
        ("mnemostore/service/_core.py", "mnemostore.search._types"),
        ("mnemostore/service/_core.py", "mnemostore.store._database"),
        ("mnemostore/service/_core.py", "mnemostore.store._instrument"),
        ("mnemostore/service/_core.py", "mnemostore.store._repositories"),
        ("mnemostore/service/_core.py", "mnemostore.store._search"),
        ("mnemostore/service/_core_async.py", "mnemostore.cache._cache_async"),
        ("mnemostore/service/_core_async.py", "mnemostore.search._embedders"),
        ("mnemostore/service/_core_async.py", "mnemostore.search._types"),
        ("mnemostore/service/_core_async.py", "mnemostore.store._database_async"),
        ("mnemostore/service/_core_async.py", "mnemostore.store._instrument"),
        ("mnemostore/service/_core_async.py", "mnemostore.store._repositories_async"),
        ("mnemostore/service/_core_async.py", "mnemostore.store._search_async"),
        # _history (both twins): encode_cursor -> mnemostore.store
        ("mnemostore/service/_history.py", "mnemostore.store._cursors"),
        # _indexer (both twins): Embedder, IndexingStatus -> mnemostore.search; AsyncDatabase, ClaimedJob ->
        #   mnemostore.store; uow.index_jobs, uow.vector_column_is_vector()
        ("mnemostore/service/_indexer.py", "mnemostore.search._embedders"),
        ("mnemostore/service/_indexer.py", "mnemostore.search._types"),
        ("mnemostore/service/_indexer.py", "mnemostore.store._database"),
        ("mnemostore/service/_indexer.py", "mnemostore.store._search"),
        ("mnemostore/service/_indexer_async.py", "mnemostore.search._embedders"),
        ("mnemostore/service/_indexer_async.py", "mnemostore.search._types"),
        ("mnemostore/service/_indexer_async.py", "mnemostore.store._database_async"),
        ("mnemostore/service/_indexer_async.py", "mnemostore.store._search_async"),
        # _knowledge (both twins): ItemKind -> mnemostore.search
        ("mnemostore/service/_knowledge.py", "mnemostore.search._types"),
        ("mnemostore/service/_knowledge_async.py", "mnemostore.search._types"),
        # _memories (both twins): mnemostore.cache / mnemostore.search / mnemostore.store names
        ("mnemostore/service/_memories.py", "mnemostore.cache._types"),
        ("mnemostore/service/_memories.py", "mnemostore.search._embedders"),
        ("mnemostore/service/_memories.py", "mnemostore.search._types"),
        ("mnemostore/service/_memories.py", "mnemostore.store._repositories"),
        ("mnemostore/service/_memories_async.py", "mnemostore.cache._types"),
        ("mnemostore/service/_memories_async.py", "mnemostore.search._embedders"),
        ("mnemostore/service/_memories_async.py", "mnemostore.search._types"),
        ("mnemostore/service/_memories_async.py", "mnemostore.store._repositories_async"),
        # _operations (both twins): backups -> import mnemostore.ops.backup_async as backups; _flags ->
        #   mnemostore.cache.flags; ops/store names -> their packages; uow.index_jobs
        ("mnemostore/service/_operations.py", "mnemostore.cache._flags"),
        ("mnemostore/service/_operations.py", "mnemostore.ops._archive"),
        ("mnemostore/service/_operations.py", "mnemostore.ops._backup"),
        ("mnemostore/service/_operations.py", "mnemostore.ops._health"),
        ("mnemostore/service/_operations.py", "mnemostore.store._crypto"),
        ("mnemostore/service/_operations.py", "mnemostore.store._search"),
        ("mnemostore/service/_operations_async.py", "mnemostore.cache._flags"),
        ("mnemostore/service/_operations_async.py", "mnemostore.ops._archive"),
        ("mnemostore/service/_operations_async.py", "mnemostore.ops._backup_async"),
        ("mnemostore/service/_operations_async.py", "mnemostore.ops._health_async"),
        ("mnemostore/service/_operations_async.py", "mnemostore.store._crypto"),
        ("mnemostore/service/_operations_async.py", "mnemostore.store._search_async"),
        # _scope (both twins): AsyncUnitOfWork, AsyncIndexRepository -> mnemostore.store / uow.index_jobs; ItemKind ->
        #   mnemostore.search; TYPE_CHECKING import of store_async closes a module cycle
        ("mnemostore/service/_scope.py", "mnemostore.search._types"),
        ("mnemostore/service/_scope.py", "mnemostore.service.store"),
        ("mnemostore/service/_scope.py", "mnemostore.store._repositories"),
        ("mnemostore/service/_scope.py", "mnemostore.store._search"),
        ("mnemostore/service/_scope_async.py", "mnemostore.search._types"),
        ("mnemostore/service/_scope_async.py", "mnemostore.service.store_async"),
        ("mnemostore/service/_scope_async.py", "mnemostore.store._repositories_async"),
        ("mnemostore/service/_scope_async.py", "mnemostore.store._search_async"),
        # _search (both twins): search names -> mnemostore.search; AsyncDatabase, pg_search_settings ->
        #   mnemostore.store; uow.search, uow.vector_column_is_vector()
        ("mnemostore/service/_search.py", "mnemostore.search._embedders"),
        ("mnemostore/service/_search.py", "mnemostore.search._rank"),
        ("mnemostore/service/_search.py", "mnemostore.search._statements"),
        ("mnemostore/service/_search.py", "mnemostore.search._types"),
        ("mnemostore/service/_search.py", "mnemostore.search._vector_index"),
        ("mnemostore/service/_search.py", "mnemostore.store._database"),
        ("mnemostore/service/_search.py", "mnemostore.store._search"),
        ("mnemostore/service/_search_async.py", "mnemostore.search._embedders"),
        ("mnemostore/service/_search_async.py", "mnemostore.search._rank"),
        ("mnemostore/service/_search_async.py", "mnemostore.search._statements"),
        ("mnemostore/service/_search_async.py", "mnemostore.search._types"),
        ("mnemostore/service/_search_async.py", "mnemostore.search._vector_index"),
        ("mnemostore/service/_search_async.py", "mnemostore.store._database_async"),
        ("mnemostore/service/_search_async.py", "mnemostore.store._search_async"),
        # _searching (both twins): SearchFilters etc. -> mnemostore.search; uow.index_jobs
        ("mnemostore/service/_searching.py", "mnemostore.search._statements"),
        ("mnemostore/service/_searching.py", "mnemostore.search._types"),
        ("mnemostore/service/_searching.py", "mnemostore.store._search"),
        ("mnemostore/service/_searching_async.py", "mnemostore.search._statements"),
        ("mnemostore/service/_searching_async.py", "mnemostore.search._types"),
        ("mnemostore/service/_searching_async.py", "mnemostore.store._search_async"),
        # _tenants (both twins): codecs -> mnemostore.cache
        ("mnemostore/service/_tenants.py", "mnemostore.cache._cache"),
        ("mnemostore/service/_tenants_async.py", "mnemostore.cache._cache_async"),
        # _users (both twins): codecs -> mnemostore.cache
        ("mnemostore/service/_users.py", "mnemostore.cache._cache"),
        ("mnemostore/service/_users_async.py", "mnemostore.cache._cache_async"),
        # store (both twins): module cycle (see _scope)
        ("mnemostore/service/store.py", "mnemostore.service._agent"),
        ("mnemostore/service/store_async.py", "mnemostore.service._agent_async"),
    ]
)


@dataclass(frozen=True, slots=True)
class Import:
    file: str  # path relative to the repository root, with forward slashes
    line: int
    module: str  # the importing module, dotted
    target: str  # the imported module (or, for ``from m import name`` of a non-module, ``m.name``)
    via_module: str  # the module the target lives in (``target`` itself when it is a module)


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
        for node in ast.walk(ast.parse(text, filename=path)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _ours(alias.name):
                        found.append(Import(path, node.lineno, this, alias.name, alias.name))
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, package)
                if not _ours(base):
                    continue
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    if candidate in modules:  # ``from pkg import submodule``
                        found.append(Import(path, node.lineno, this, candidate, candidate))
                    elif alias.name == "*" or not alias.name.startswith("_") or alias.name.startswith("__"):
                        found.append(Import(path, node.lineno, this, base, base))
                    else:  # a private name of ``base``
                        found.append(Import(path, node.lineno, this, candidate, base))
    return list(dict.fromkeys(found))  # one per (line, target): ``from m import a, b`` is one import of m


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
        if imp.module != imp.via_module:
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


def split(violations: Iterable[Violation]) -> tuple[list[Violation], set[tuple[str, str]]]:
    """(violations not on the allowlist, allowlist entries that no longer occur)."""
    violations = list(violations)
    unexpected = [v for v in violations if (v.file, v.target) not in ALLOWLIST]
    seen = {(v.file, v.target) for v in violations}
    return unexpected, set(ALLOWLIST) - seen


def violations_of(sources: Mapping[str, str]) -> list[Violation]:
    return check(collect_imports(sources))


# -- the tree as it is ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return read_sources()


def test_every_unit_is_placed(sources: dict[str, str]) -> None:
    units = {unit_of(module_name(path)) for path in sources}
    assert units <= set(LAYERS), f"add to LAYERS: {sorted(units - set(LAYERS))}"


def test_no_violation_outside_the_allowlist(sources: dict[str, str]) -> None:
    unexpected, _ = split(violations_of(sources))
    assert not unexpected, "import rule broken (see ARCHITECTURE.md):\n" + "\n".join(map(str, unexpected))


def test_allowlist_only_shrinks(sources: dict[str, str]) -> None:
    _, stale = split(violations_of(sources))
    assert not stale, "allowlisted imports that no longer occur; delete them from ALLOWLIST:\n" + "\n".join(
        f"{file}: {target}" for file, target in sorted(stale)
    )


def test_allowlist_is_only_about_the_service(sources: dict[str, str]) -> None:
    """Nothing outside the service (bar the root's read of service._base) may be waved through."""
    outside = {
        (file, target)
        for file, target in ALLOWLIST
        if not file.startswith("mnemostore/service/") and target != "mnemostore.service._base"
    }
    assert not outside


# -- the checker itself, on synthetic sources -----------------------------------------------------------------


def _with(sources: dict[str, str], path: str, text: str) -> list[Violation]:
    unexpected, _ = split(violations_of({**sources, path: text}))
    return [v for v in unexpected if v.file == path]


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
    assert [v.rule for v in found] == [
        "layering: ops (layer 5) may not import mnemostore, above it",
        "package cycle: mnemostore -> ops -> mnemostore",
    ]


def test_a_module_cycle_inside_a_unit_is_reported(sources: dict[str, str]) -> None:
    extra = {
        "mnemostore/ops/_one.py": "from mnemostore.ops import _two\n",
        "mnemostore/ops/_two.py": "def f():\n    from mnemostore.ops._one import g\n",
    }
    unexpected, _ = split(violations_of({**sources, **extra}))
    cycle = "module cycle: mnemostore.ops._one -> mnemostore.ops._two -> mnemostore.ops._one"
    assert [(v.file, v.line, v.rule) for v in unexpected] == [
        ("mnemostore/ops/_one.py", 1, cycle),
        ("mnemostore/ops/_two.py", 2, cycle),
    ]


def test_a_new_violation_in_an_allowlisted_service_file_is_still_reported(sources: dict[str, str]) -> None:
    path = "mnemostore/service/_history.py"
    found = _with(sources, path, sources[path] + "from mnemostore.ops._health_base import HealthStatus\n")
    assert [v.target for v in found] == ["mnemostore.ops._health_base"]


def test_the_allowlist_shrinks_when_a_service_import_is_fixed(sources: dict[str, str]) -> None:
    path = "mnemostore/service/_history.py"
    fixed = sources[path].replace("from mnemostore.store._cursors import", "from mnemostore.store import")
    assert fixed != sources[path]
    _, stale = split(violations_of({**sources, path: fixed}))
    assert stale == {(path, "mnemostore.store._cursors")}
