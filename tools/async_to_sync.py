#!/usr/bin/env python
"""Generate the sync twins of mnemostore's async modules.

The async code is the source of truth. The sync facade is derived from it by a
syntax-tree rewrite (comments kept, then tidied by ruff), so the two can never
drift apart. Edit the ``*_async.py`` file, then run
``python tools/async_to_sync.py --all``; CI runs ``--check --all``.

Which files: every ``*_async.py`` under ``mnemostore/`` and ``tests/``
(SOURCE_GLOBS) has a twin named by ``sync_filename`` (``store_async.py`` ->
``store.py``), which starts with a generated header. ``--check --all`` fails
when a twin is missing, stale (differs from what its source generates) or
orphaned (carries the header but its source is gone), and both modes refuse to
overwrite a module without the header. A source that must have no twin goes in
NO_TWIN with its reason (empty so far; prefer keeping it so).

Code with no sync equivalent goes under ``if True:  # ASYNC`` (the ``# ASYNC``
comment on the ``if`` line): the sync file keeps only the ``else:`` body.

Docstrings (module, class, function) are rewritten like code, so write them
once, for the async API: ``await `` before an expression, the ``async`` of
``async with/for/def`` and of "an async context manager" (iterator, iterable,
generator, callable, function) go; every identifier or dotted name is renamed as
in code (``AsyncFoo`` -> ``Foo``, RENAMES, MOVES, ``store_async`` -> ``store``,
``foo_async.py`` -> ``foo.py``; "an AsyncCache" -> "a Cache"). Other strings and
comments are left alone, and so is prose ("the async store awaits it").

Text that is true of the async source only goes in an async note: parentheses
opened by ``(async)``, ``(async;`` or ``(async:``, nested parentheses allowed,
across lines, anywhere in a docstring, e.g. the summary "Backup and restore
(async; _backup.py is generated from this file)." The sync twin drops the note,
and the line or the paragraph it leaves empty. Do not say that a file is
generated, or which one is the source, outside such a note: the twin's header
says it. Sentences about both twins ("the sync twin runs them on threads") need
nothing.

The output depends on ruff's version: the dev extra of pyproject.toml pins it
(``ruff==X.Y.Z``, read from there), and the tool refuses to run another one.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib.util
import io
import itertools
import json
import re
import shutil
import subprocess
import sys
import tokenize
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ast_comments  # type: ignore[import-untyped]  # ships neither stubs nor py.typed

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"  # pins the ruff that formats the output (the dev extra)

# Every file matching these (relative to ROOT) is an async source with a sync twin
# named by sync_filename; --check --all fails on a twin that is missing, stale or
# orphaned (generated from a source that no longer exists).
SOURCE_GLOBS = ("mnemostore/**/*_async.py", "tests/**/*_async.py")
# The exceptions: sources that must have no twin, relative to ROOT, each with its
# reason. Keep it empty if you can: a listed file that no longer exists fails the check.
NO_TWIN: dict[str, str] = {}

# Identifier renames, on top of the generic rule AsyncFoo -> Foo.
RENAMES = {
    "create_async_engine": "create_engine",
    "asynccontextmanager": "contextmanager",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "aclosing": "closing",
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "aiter": "iter",
    "anext": "next",
    "StopAsyncIteration": "StopIteration",
    # httpx: the async client's methods and transport API and their sync names (AsyncClient -> Client is the
    # generic rule; the sync byte stream is SyncByteStream, not the ByteStream both twins can use).
    "aiter_lines": "iter_lines",
    "aiter_bytes": "iter_bytes",
    "aread": "read",
    "handle_async_request": "handle_request",
    "AsyncByteStream": "SyncByteStream",
    # Test fixtures: the async tests use astore/atenant, their sync twins store/tenant.
    "astore": "store",
    "atenant": "tenant",
}
# Dotted names that live in another module in sync code (tried before MODULES).
MOVES = {
    "asyncio.sleep": "time.sleep",
    "asyncio.Lock": "threading.Lock",
    "asyncio.Event": "threading.Event",
    "pytest_asyncio.fixture": "pytest.fixture",
}
# Async module (or package prefix) -> sync module.
MODULES = {"redis.asyncio": "redis", "sqlalchemy.ext.asyncio": "sqlalchemy"}
# Ruff only sees modules that exist as first-party: say it, or a sync module
# imported before it is generated would sort differently once it exists.
FIRST_PARTY = 'lint.isort.known-first-party = ["mnemostore"]'
# pytest marks that only make sense on async tests.
ASYNC_MARKS = {"pytest.mark.asyncio", "pytest.mark.anyio"}

HEADER = (
    "# WARNING: this file was generated by tools/async_to_sync.py\n"
    "# from {origin}.\n"
    "# Edit the async file, then run `python tools/async_to_sync.py --all`.\n"
)

Comment: Any = ast_comments.Comment
_MARKER = re.compile(r"#\s*ASYNC\b")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_BLOCKS = ("body", "orelse", "finalbody")


def sync_name(name: str) -> str:
    """Rename one identifier: explicit table first, then ``AsyncFoo`` -> ``Foo``."""
    if name in RENAMES:
        return RENAMES[name]
    return name[5:] if re.match(r"Async[A-Z]", name) else name


def sync_dotted(dotted: str, *, module: bool = False) -> str:
    """Map a dotted name; with ``module``, also drop ``_async`` name suffixes."""
    for old, new in (*MOVES.items(), *MODULES.items()):
        if dotted == old or dotted.startswith(old + "."):
            dotted = new + dotted[len(old) :]
            break
    parts = [sync_name(part) for part in dotted.split(".")]
    if module:
        parts = [p[:-6] if p.endswith("_async") and p != "_async" else p for p in parts]
    return ".".join(parts)


# Docstring prose: "an async context manager" -> "a context manager", "async with" -> "with"...
_ASYNC_NOUNS = r"(?:context manager|iterator|iterable|generator|callable|function)s?\b"
_DOC_PHRASES = (
    (re.compile(r"\b([Aa]n) async (?=(?:iterator|iterable)s?\b)"), r"\1 "),
    (re.compile(rf"\b([Aa])n async (?={_ASYNC_NOUNS})"), r"\1 "),
    (re.compile(rf"\basync (?={_ASYNC_NOUNS}|(?:def|with|for)\b)"), ""),
    (re.compile(r"\bawait (?=[\w(\[])"), ""),
)
# "an ``AsyncCache``" -> "a ``Cache``" (the article of a name that loses its "Async").
_ARTICLE = re.compile(r"\b([Aa])n(\s+[`'\"*]*)(?=Async[A-Z])")
_WORD = re.compile(r"(?<!\w)[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_ASYNC_NOTE = re.compile(r"[ \t]*\(async(?=[;:)])")


def _drop_async_notes(text: str) -> str:
    """Remove each ``(async...)`` note, its parentheses balanced, and the line or paragraph it leaves empty."""
    parts: list[str] = []
    pos = 0
    while match := _ASYNC_NOTE.search(text, pos):
        depth, end = 0, -1
        for index in range(text.index("(", match.start()), len(text)):
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            if depth == 0:
                end = index + 1
                break
        if end < 0:
            break  # unbalanced: leave the rest alone
        start = match.start()
        line_start = text.rfind("\n", 0, start) + 1
        if not text[line_start:start].strip():  # the note opens its line: keep the indentation
            start = text.index("(", start)
            while end < len(text) and text[end] in " \t":
                end += 1
            if end < len(text) and text[end] == "\n":  # ... and fills it: drop the line
                start, end = line_start, end + 1
                previous = text.rfind("\n", 0, max(line_start - 1, 0)) + 1
                if line_start and not text[previous : line_start - 1].strip():
                    start = previous  # and the blank line before it
        parts.append(text[pos:start])
        pos = end
    return "".join(parts) + text[pos:]


def sync_text(text: str) -> str:
    """Rewrite docstring text for the sync twin, as code is rewritten.

    Drops ``(async...)`` notes, ``await``, the ``async`` of ``async with/for/def``
    and of "an async context manager" (iterator, generator...), then maps every
    identifier and dotted name like code: ``AsyncFoo`` -> ``Foo``, RENAMES,
    MOVES, and module names lose their ``_async`` (``store_async.py`` -> ``store.py``).
    """
    text = _drop_async_notes(text)
    for pattern, replacement in _DOC_PHRASES:
        text = pattern.sub(replacement, text)
    text = _ARTICLE.sub(lambda m: m[0] if text[m.end() + 5] in "AEIOU" else m[1] + m[2], text)
    return _WORD.sub(lambda word: sync_dotted(word.group(), module=True), text)


def sync_filename(path: Path) -> Path:
    """``foo_async.py`` -> ``foo.py`` (the last ``_async`` of the stem is removed)."""
    head, sep, tail = path.stem.rpartition("_async")
    if not sep:
        raise ValueError(f"{path}: file name has no '_async' part")
    return path.with_name(head + tail + path.suffix)


def _dotted_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _is_async_mark(node: ast.AST) -> bool:
    return _dotted_name(node.func if isinstance(node, ast.Call) else node) in ASYNC_MARKS


def _is_blank(node: ast.AST) -> bool:
    return isinstance(node, Comment) and not node.value


def _convert(node: ast.AST, cls: type[ast.AST]) -> Any:
    """Turn e.g. AsyncFor into For, keeping fields, location and our markers."""
    new = cls()
    new.__dict__.update(vars(node))
    return new


class AsyncToSync(ast.NodeTransformer):
    def __init__(self, async_ifs: set[int]) -> None:
        self.async_ifs = async_ifs  # ids of `if ...:  # ASYNC` nodes
        self.needed: set[str] = set()  # modules that moved code now refers to

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> Any:
        return self.visit_FunctionDef(_convert(node, ast.FunctionDef))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.ClassDef) -> Any:
        node.name = sync_name(node.name)
        node.decorator_list = [d for d in node.decorator_list if not _is_async_mark(d)]
        return self.generic_visit(node)

    visit_ClassDef = visit_FunctionDef

    def visit_AsyncFor(self, node: ast.AsyncFor) -> Any:
        return self.generic_visit(_convert(node, ast.For))

    def visit_AsyncWith(self, node: ast.AsyncWith) -> Any:
        return self.generic_visit(_convert(node, ast.With))

    def visit_Await(self, node: ast.Await) -> Any:
        return self.visit(node.value)

    def visit_comprehension(self, node: ast.comprehension) -> Any:
        node.is_async = 0
        return self.generic_visit(node)

    def visit_If(self, node: ast.If) -> Any:
        if id(node) not in self.async_ifs:
            return self.generic_visit(node)
        holder = ast.Module(body=node.orelse, type_ignores=[])
        self.generic_visit(holder)
        if holder.body and isinstance(holder.body[0], Comment):
            holder.body[0].inline = False  # the `else:  # ...` comment
        return holder.body

    def visit_Assign(self, node: ast.Assign) -> Any:
        if [_dotted_name(t) for t in node.targets] == ["pytestmark"]:
            if _is_async_mark(node.value):
                return None
            if isinstance(node.value, (ast.List, ast.Tuple)):
                node.value.elts = [e for e in node.value.elts if not _is_async_mark(e)]
                if not node.value.elts:
                    return None
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> Any:
        node.id = sync_name(node.id)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        dotted = _dotted_name(node)
        if dotted is None:
            node.attr = sync_name(node.attr)
            return self.generic_visit(node)
        synced = sync_dotted(dotted)
        # A module move (asyncio.sleep -> time.sleep) needs an import; a plain rename (astore -> store) does not.
        if synced.split(".")[0] != sync_name(dotted.split(".")[0]):
            self.needed.add(synced.split(".")[0])
        new: Any = ast.parse(synced, mode="eval").body
        new.ctx = node.ctx
        return ast.copy_location(new, node)

    def visit_arg(self, node: ast.arg) -> Any:
        node.arg = sync_name(node.arg)
        return self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> Any:
        node.arg = node.arg and sync_name(node.arg)
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        # Identifiers and dotted paths in strings: monkeypatch targets, importlib...
        if isinstance(node.value, str) and _DOTTED.fullmatch(node.value):
            node.value = sync_dotted(node.value, module="." in node.value)
        return node

    def visit_Import(self, node: ast.Import) -> Any:
        for alias in node.names:
            alias.name = sync_dotted(alias.name, module=True)
            _fix_asname(alias)
        node.names = _dedupe(node.names)
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        groups: dict[str | None, list[ast.alias]] = {}
        for alias in node.names:
            module = node.module
            if module is not None:
                full = sync_dotted(f"{module}.{alias.name}")
                module, _, alias.name = full.rpartition(".")
                module = sync_dotted(module, module=True)
            else:
                alias.name = sync_name(alias.name)
            _fix_asname(alias)
            groups.setdefault(module, []).append(alias)
        return [
            ast.copy_location(ast.ImportFrom(mod, _dedupe(names), node.level), node) for mod, names in groups.items()
        ]


def _fix_asname(alias: ast.alias) -> None:
    alias.asname = alias.asname and sync_name(alias.asname)
    if alias.asname == alias.name:
        alias.asname = None


def _dedupe(aliases: list[ast.alias]) -> list[ast.alias]:
    unique = {(a.name, a.asname): a for a in reversed(aliases)}
    return list(reversed(unique.values()))


def _prepare(tree: ast.AST, source: str) -> set[int]:
    """Record what ast_comments loses or blurs, before the tree is rewritten.

    Inserts blank-line markers, attaches trailing comments to their statement
    (so they follow it or vanish with it) and returns the ids of the
    ``# ASYNC`` ifs. ast_comments moves the line numbers of block statements,
    so the true ones come from a plain parse walked in the same order.
    """
    lines = source.splitlines()
    nodes = [n for n in ast.walk(tree) if not isinstance(n, Comment)]
    span: dict[int, tuple[int, int]] = {}
    for new, old in zip(nodes, ast.walk(ast.parse(source)), strict=True):
        if isinstance(old, ast.stmt):
            decorators = getattr(old, "decorator_list", [])
            start = min([old.lineno, *(d.lineno for d in decorators)])
            span[id(new)] = (start, old.end_lineno or old.lineno)
    in_fstring = {id(c) for n in nodes if isinstance(n, ast.JoinedStr) for c in ast.walk(n) if c is not n}
    segment = _Segments(source)
    for node in nodes:
        if isinstance(node, ast.Constant | ast.JoinedStr) and id(node) not in in_fstring:
            literal: Any = node
            literal.a2s_source = (_literal_source(segment(node)), ast.dump(node))
    for doc in _docstrings(tree):
        doc.value = sync_text(doc.value)
        text = sync_text(doc.a2s_source[0])
        try:
            same = ast.literal_eval(text) == doc.value
        except (SyntaxError, ValueError):
            same = False
        # Kept as written when both rewrites agree (no escape sequence was in the way).
        doc.a2s_source = (text, ast.dump(doc)) if same else None
    comments = {n.lineno: n.value for n in ast.walk(tree) if isinstance(n, Comment)}
    async_ifs = {
        id(n)
        for n in nodes
        if isinstance(n, ast.If)
        and any(_MARKER.match(comments.get(line, "")) for line in range(span[id(n)][0], (n.test.end_lineno or 0) + 1))
    }
    for node in nodes:
        for field in _BLOCKS:
            block: list[Any] = []
            old_block = getattr(node, field, None)
            if not isinstance(old_block, list):
                continue
            for item in old_block:
                prev = block[-1] if block else None
                if isinstance(item, Comment):
                    line = item.lineno
                    if item.inline and prev is not None:
                        if not isinstance(prev, Comment) and span[id(prev)][1] == line:
                            prev.a2s_trailing = item
                            continue
                        item.inline = False  # comment from inside an expression
                else:
                    line = span[id(item)][0]
                if block and line >= 2 and not lines[line - 2].strip():
                    block.append(Comment(value="", inline=False))
                block.append(item)
            setattr(node, field, block)
    return async_ifs


def _docstrings(tree: ast.AST) -> Iterator[Any]:
    """The docstring nodes (ast.Constant) of the module, classes and functions."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = next((item for item in node.body if not isinstance(item, Comment)), None)
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield value


def _finish(tree: ast.AST) -> None:
    """Re-attach trailing comments, tidy blank markers, fill emptied blocks."""
    for node in ast.walk(tree):
        for field in _BLOCKS:
            old_block = getattr(node, field, None)
            if not isinstance(old_block, list):
                continue
            block: list[Any] = []
            for item in old_block:
                if _is_blank(item) and (not block or _is_blank(block[-1])):
                    continue
                block.append(item)
                if (trailing := getattr(item, "a2s_trailing", None)) is not None:
                    block.append(trailing)
            while block and _is_blank(block[-1]):
                block.pop()
            empty = all(isinstance(item, Comment) for item in block)
            if empty and (block or field == "body") and not isinstance(node, ast.Module):
                block.append(ast.Pass())
            setattr(node, field, block)


class _Unparser(ast_comments._Unparser):  # type: ignore[misc]  # untyped base class
    """Write literals as they were written (quotes, implicit concatenation...)."""

    def _verbatim(self, node: ast.AST) -> bool:
        saved = getattr(node, "a2s_source", None)
        if saved is None or saved[1] != ast.dump(node):
            return False  # not recorded, or changed by the rewrite
        self.write(saved[0])
        return True

    def visit_Constant(self, node: ast.Constant) -> None:
        if not self._verbatim(node):
            super().visit_Constant(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        if not self._verbatim(node):
            super().visit_JoinedStr(node)

    def _write_docstring(self, node: ast.Constant) -> None:
        self.fill()
        if not self._verbatim(node):
            super()._write_docstring(node)


class _Segments:
    """``ast.get_source_segment`` in constant time per node.

    The standard function splits the whole source again on every call, which made
    a file's conversion quadratic in its size (the store's module took over a
    minute). Node columns are UTF-8 byte offsets, so this slices the encoded text
    from precomputed line starts.
    """

    def __init__(self, source: str) -> None:
        self.data = source.encode("utf-8")
        # ast numbers lines on \n, \r\n and \r, like this pattern.
        self.starts = [0, *(m.end() for m in re.finditer(rb"\r\n|\r|\n", self.data))]

    def __call__(self, node: ast.AST) -> str:
        end_lineno, end_col = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
        if end_lineno is None or end_col is None:
            return ""
        start = self.starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]
        return self.data[start : self.starts[end_lineno - 1] + end_col].decode("utf-8")


def _literal_source(segment: str) -> str:
    """Source of a literal; implicitly concatenated parts go on one line (ruff re-splits)."""
    text = f"({segment})"  # parenthesized, so line breaks between parts tokenize fine
    offsets = [0, *itertools.accumulate(len(line) for line in text.splitlines(keepends=True))]
    parts: list[str] = []
    depth = begin = 0
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        start = offsets[tok.start[0] - 1] + tok.start[1]
        end = offsets[tok.end[0] - 1] + tok.end[1]
        if tok.type == tokenize.STRING and depth == 0:
            parts.append(text[start:end])
        elif tok.type == getattr(tokenize, "FSTRING_START", None):  # Python >= 3.12
            depth, begin = depth + 1, begin if depth else start
        elif tok.type == getattr(tokenize, "FSTRING_END", None):
            depth -= 1
            if not depth:
                parts.append(text[begin:end])
    return " ".join(parts) if len(parts) > 1 else segment


def _ruff_command() -> list[str]:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    if exe := shutil.which("ruff"):
        return [exe]
    raise SystemExit(f"async_to_sync: ruff not found (pip install ruff=={pinned_ruff()})")


def pinned_ruff(pyproject: Path | None = None) -> str:
    """The ruff version pinned (``ruff==X``) in the ``dev`` extra of ``pyproject.toml``."""
    pyproject = pyproject or PYPROJECT
    extras = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    for requirement in extras.get("dev", []):
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        if name and name.group().lower() == "ruff":
            if pin := re.fullmatch(r"ruff\s*==\s*([0-9][0-9A-Za-z.+!-]*)", requirement.strip(), re.IGNORECASE):
                return pin.group(1)
            break
    raise SystemExit(
        f"async_to_sync: {_display(pyproject)} must pin ruff exactly in the dev extra (ruff==X.Y.Z): "
        "another ruff formats the generated code differently"
    )


_checked_ruff: list[str] | None = None  # the command whose version matched the pin


def _checked_ruff_command() -> list[str]:
    """The ruff command, once its version is the pinned one (the output depends on it)."""
    global _checked_ruff
    if _checked_ruff is None:
        command = _ruff_command()
        pinned = pinned_ruff()
        proc = subprocess.run([*command, "--version"], capture_output=True, text=True, check=False)
        found = proc.stdout.split()[-1] if proc.returncode == 0 and proc.stdout.split() else "unknown"
        if found != pinned:
            raise SystemExit(
                f"async_to_sync: ruff {found} found ({' '.join(command)}), but the generated code is "
                f"formatted by ruff {pinned}, pinned in {_display(PYPROJECT)}; "
                f"run: {sys.executable} -m pip install ruff=={pinned}"
            )
        _checked_ruff = command
    return _checked_ruff


def _ruff(args: list[str], text: str, filename: Path) -> str:
    command = _checked_ruff_command()
    proc = subprocess.run(
        [*command, *args, "--quiet", "--config", FIRST_PARTY, "--stdin-filename", str(filename), "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"async_to_sync: ruff {args[0]} failed on {filename}:\n{proc.stderr}")
    return proc.stdout


def convert(source: str, origin: str, target: Path | None = None) -> str:
    """Return the sync twin of the async module ``source``.

    ``origin`` is the path named in the header; ``target`` (default: ROOT /
    origin) is where ruff believes the text lives, for its configuration.
    """
    tree = ast_comments.parse(source)
    transformer = AsyncToSync(_prepare(tree, source))
    tree = transformer.visit(tree)
    _finish(tree)
    text = HEADER.format(origin=origin) + _Unparser().visit(tree) + "\n"
    target = target or ROOT / origin
    # I002 adds the imports of moved names (asyncio.sleep -> time.sleep), F401 drops unused
    # ones, UP034 drops the parentheses unparse doubles around a lone generator argument,
    # RUF022 re-sorts an __all__ whose names were renamed (AsyncCache -> Cache moves it).
    required = json.dumps(sorted(f"import {module}" for module in transformer.needed))
    fix = [
        "check",
        "--fix-only",
        "--select",
        "I,F401,UP034,RUF022",
        "--config",
        f"lint.isort.required-imports = {required}",
    ]
    return _ruff(["format"], _ruff(fix, text, target), target)


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.name


def _generated_from(path: Path) -> str | None:
    """The origin named in the header of a generated file, or None for any other file."""
    first, origin = HEADER.format(origin="\0").splitlines()[:2]
    prefix, _, suffix = origin.partition("\0")
    with path.open(encoding="utf-8", errors="replace") as file:
        if file.readline().rstrip("\n") != first:
            return None
        line = file.readline().rstrip("\n")
    return line[len(prefix) : len(line) - len(suffix)] if line.startswith(prefix) and line.endswith(suffix) else ""


def discover() -> tuple[list[tuple[Path, Path]], list[str]]:
    """Every (async source, sync twin) under ROOT, and the problems found on the way.

    Problems: an entry of NO_TWIN that matches no source, and orphans (files with
    the generated header that are not the twin of an existing source).
    """
    problems: list[str] = []
    sources = sorted({path for pattern in SOURCE_GLOBS for path in ROOT.glob(pattern) if path.is_file()})
    for name in sorted(NO_TWIN):
        if ROOT / name not in sources:
            problems.append(f"{name}: listed in NO_TWIN, but no such source exists (remove it from NO_TWIN)")
    jobs = [(source, sync_filename(source)) for source in sources if _display(source) not in NO_TWIN]
    twins = {target for _, target in jobs}
    folders = sorted({pattern.split("/")[0] for pattern in SOURCE_GLOBS})
    for path in sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py")):
        origin = _generated_from(path)
        if origin is not None and path not in twins:
            problems.append(
                f"{_display(path)}: orphaned: generated from {origin or '(unknown)'}, which has no such twin "
                "(delete it, or restore its source)"
            )
    return jobs, problems


def process(source: Path, target: Path, *, check: bool) -> str | None:
    """Generate ``target`` from ``source``; return what was wrong with it, or None if it was up to date.

    With ``check``, writes nothing and prints the diff of a stale twin. Never
    overwrites a file that lacks the generated header (a hand-written module).
    """
    name = _display(target)
    new = convert(source.read_text(encoding="utf-8"), _display(source), target)
    if not target.exists():
        problem = f"{name}: missing (the twin of {_display(source)})"
    elif _generated_from(target) is None:
        return f"{name}: exists but was not generated (no header): move it away, it is the twin of {_display(source)}"
    else:
        old = target.read_text(encoding="utf-8")
        if new == old:
            return None
        problem = f"{name}: stale (differs from what {_display(source)} generates)"
        if check:
            diff = difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"{name} (on disk)",
                f"{name} (generated)",
            )
            sys.stdout.writelines(diff)
    if check:
        return problem
    target.write_text(new, encoding="utf-8", newline="\n")
    print(f"async_to_sync: wrote {name}", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate sync modules from async ones.")
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE_async.py")
    parser.add_argument(
        "--all", action="store_true", help=f"every {' and '.join(SOURCE_GLOBS)} file (less NO_TWIN); flag orphans"
    )
    parser.add_argument("--check", action="store_true", help="write nothing; report what is wrong, exit 1 if any")
    args = parser.parse_args(argv)
    if not args.files and not args.all:
        parser.error("give FILE_async.py arguments or --all")

    jobs: list[tuple[Path, Path]] = []
    problems: list[str] = []
    if args.all:
        jobs, problems = discover()
    for path in args.files:
        if not path.is_file() or "_async" not in path.stem:
            parser.error(f"{path}: not an existing *_async.py file")
        jobs.append((path, sync_filename(path)))

    problems += [problem for source, target in jobs if (problem := process(source, target, check=args.check))]
    for problem in problems:
        print(f"async_to_sync: {problem}", file=sys.stderr)
    if problems:
        fix = "run `python tools/async_to_sync.py --all`" if args.check else "fix the above"
        print(f"async_to_sync: {len(problems)} problem(s); {fix}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
