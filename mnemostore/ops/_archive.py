"""The backup archive: its layout, its manifest, the row encoding, and writing and checking archive files.

No database here (``backup_async.py`` reads and writes the tables); this module only knows files. An archive is a
folder, or the same folder packed in one ``.tar`` or ``.tar.gz``::

    manifest.json             what the archive holds: format + version, schema revision, scope, and per table
                              its file, row count, size, SHA-256, columns (with their kinds) and free metadata
    signature.json            only when a signing key was configured: an HMAC of manifest.json (``_signing``)
    tables/tenants.jsonl      one JSON Lines file per table, rows in primary-key order
    tables/tenant_usage.jsonl …

Every row is one JSON object on one line, encoded canonically: keys sorted (nested JSON values too), no spaces,
UTF-8, UUIDs as strings, timestamps as ISO-8601 UTC with microseconds and a ``Z``, JSON columns as JSON. Rows
are ordered by primary key with byte-wise string comparison (``COLLATE "C"`` on PostgreSQL, SQLite's default), so
the same data gives the same bytes, and the same checksums, whichever backend it was read from. That is what
lets a restore be verified by re-reading and re-hashing, and a SQLite archive be compared with a PostgreSQL one.

The manifest leaves room for what later issues add: each table entry carries a ``metadata`` object (the embedding
model of a vector table goes there), and each column a ``kind``, so a reader knows how to decode a value without
importing mnemostore. A reader refuses a ``format_version`` it does not know.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import struct
import tarfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import sqlalchemy as sa

from mnemostore.errors import ArchiveCorrupted, ArchiveVersionUnsupported, BackupError
from mnemostore.ops._signing import SIGNATURE_NAME, SignatureStatus, SigningKey, sign_manifest
from mnemostore.store.tables import UtcDateTime

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ArchiveWriter",
    "BackupManifest",
    "BackupResult",
    "ColumnSpec",
    "ProgressReporter",
    "RestoreResult",
    "RowCodec",
    "Scope",
    "TableEntry",
    "TableSink",
    "column_kind",
]

FORMAT: Final = "mnemostore-backup"
FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"
TABLES_DIR: Final = "tables"
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


# -- manifest -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What a backup covers: everything (``full``), one tenant, or one user's rows within a tenant."""

    kind: str = "full"
    tenant_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.tenant_id is not None:
            out["tenant_id"] = str(self.tenant_id)
        if self.user_id is not None:
            out["user_id"] = str(self.user_id)
        return out


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    kind: str  # uuid, timestamp, json, text, integer, float, boolean, binary (base64), vector (float32 LE, base64)


@dataclass(frozen=True, slots=True)
class TableEntry:
    """One table of the archive."""

    name: str
    file: str
    rows: int
    bytes: int
    sha256: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    # Free-form facts about the table that a restore may need, e.g. {"embedding_model": "all-MiniLM-L6-v2",
    # "dimensions": 384} for a vector table; empty for the tables of schema 0001.
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "columns": {c.name: c.kind for c in self.columns},
            "primary_key": list(self.primary_key),
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class BackupManifest:
    """The table of contents of an archive (``manifest.json``)."""

    schema_revision: str
    scope: Scope
    tables: tuple[TableEntry, ...]
    created_at: datetime
    source_backend: str
    mnemostore_version: str
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def table(self, name: str) -> TableEntry | None:
        return next((t for t in self.tables if t.name == name), None)

    def to_json(self) -> bytes:
        data = {
            "format": self.format,
            "format_version": self.format_version,
            "created_at": encode_time(self.created_at),
            "mnemostore_version": self.mnemostore_version,
            "schema_revision": self.schema_revision,
            "source": {"backend": self.source_backend},
            "scope": self.scope.to_dict(),
            "tables": [t.to_dict() for t in self.tables],
        }
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> BackupManifest:
        """Parse and check a manifest.

        Raises:
            ArchiveCorrupted: not a manifest, or a malformed one.
            ArchiveVersionUnsupported: a manifest of another format version.
        """
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise ArchiveCorrupted(f"{where}: manifest.json is not JSON ({error}): the archive is damaged") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArchiveCorrupted(f"{where}: manifest.json does not describe a {FORMAT} archive")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ArchiveVersionUnsupported(
                f"{where} is a {FORMAT} archive of format version {version!r}; this mnemostore reads version "
                f"{FORMAT_VERSION} only: restore it with the mnemostore version that wrote it "
                f"({data.get('mnemostore_version', 'unknown')})"
            )
        try:
            scope = data["scope"]
            tables = tuple(
                TableEntry(
                    name=_str(t["name"]),
                    file=_str(t["file"]),
                    rows=_count(t["rows"]),
                    bytes=_count(t["bytes"]),
                    sha256=_str(t["sha256"]),
                    columns=tuple(ColumnSpec(_str(name), _str(kind)) for name, kind in t["columns"].items()),
                    primary_key=tuple(_str(k) for k in t["primary_key"]),
                    metadata=dict(t.get("metadata") or {}),
                )
                for t in data["tables"]
            )
            manifest = cls(
                schema_revision=_str(data["schema_revision"]),
                scope=Scope(
                    kind=_str(scope["kind"]),
                    tenant_id=uuid.UUID(scope["tenant_id"]) if scope.get("tenant_id") else None,
                    user_id=uuid.UUID(scope["user_id"]) if scope.get("user_id") else None,
                ),
                tables=tables,
                created_at=decode_time(data["created_at"]),
                source_backend=_str(data["source"]["backend"]),
                mnemostore_version=_str(data["mnemostore_version"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ArchiveCorrupted(f"{where}: manifest.json is malformed ({error!r}): the archive is damaged") from None
        names = [t.name for t in tables]
        files = [t.file for t in tables]
        if len(set(names)) != len(names) or len(set(files)) != len(files):
            raise ArchiveCorrupted(f"{where}: manifest.json lists a table or a file twice: the archive is damaged")
        for entry in tables:
            if not _TABLE_NAME.fullmatch(entry.name):  # a name like "../x" would lead outside the archive
                raise ArchiveCorrupted(f"{where}: manifest.json names an unexpected table {entry.name!r}")
            if entry.file != f"{TABLES_DIR}/{entry.name}.jsonl":
                raise ArchiveCorrupted(f"{where}: manifest.json names an unexpected file {entry.file!r}")
        return manifest


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"expected a count, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What ``backup``/``export`` wrote."""

    path: Path
    manifest: BackupManifest
    seconds: float
    signed_with: str | None = None
    """The id of the key that signed the manifest (``signature.json``); None: the archive is unsigned."""

    @property
    def rows(self) -> int:
        return self.manifest.total_rows

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else sum(t.bytes for t in self.manifest.tables)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What ``restore`` wrote: rows per table, the tenants it created, and whether ``verify`` re-checked them."""

    path: Path
    manifest: BackupManifest
    tenant_ids: tuple[uuid.UUID, ...]
    rows: dict[str, int]
    verified: bool
    seconds: float
    signature: SignatureStatus = "unchecked"
    """``verified``: the archive's signature matched the signing key; ``unsigned``: a key is configured but the
    archive carried no signature and the caller allowed it; ``unchecked``: no key configured, nothing checked."""

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


class ProgressReporter(Protocol):
    """Told how far a backup, restore or verification is (the CLI draws a progress bar with it)."""

    def start(self, phase: str, totals: Mapping[str, int]) -> None:
        """A phase (``backup``, ``check``, ``restore``, ``verify``) begins; ``totals`` is rows per table."""

    def advance(self, table: str, rows: int) -> None:
        """``rows`` more rows of ``table`` are done."""


# -- row encoding -------------------------------------------------------------------------------------------------


def encode_time(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat(timespec="microseconds")
    return text[:-6] + "Z"  # "+00:00" -> "Z"


def decode_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed.astimezone(UTC)


def _is_vector(kind: sa.types.TypeEngine[Any]) -> bool:
    """An embedding: float32 bytes on SQLite, pgvector's ``vector`` on PostgreSQL (when the server has pgvector)."""
    variant = (getattr(kind, "_variant_mapping", None) or {}).get("postgresql")
    spec = getattr(variant, "get_col_spec", None)
    return callable(spec) and spec() == "vector"


def column_kind(column: sa.Column[Any]) -> str:
    """How the archive encodes the values of ``column`` (recorded per column in the manifest)."""
    return _column_kind(column)


def _column_kind(column: sa.Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return "timestamp"
    if isinstance(kind, sa.Uuid):
        return "uuid"
    if isinstance(kind, sa.JSON):
        return "json"
    if isinstance(kind, sa.Boolean):
        return "boolean"
    if isinstance(kind, sa.Integer):
        return "integer"
    if isinstance(kind, sa.Float):
        return "float"
    if isinstance(kind, sa.String):  # Text too
        return "text"
    if isinstance(kind, sa.LargeBinary):
        return "vector" if _is_vector(kind) else "binary"
    # A column of a new kind needs an encoding here before it can be backed up (and restored the same way).
    raise BackupError(f"column {column.table.name}.{column.name} has type {kind!r}, which backups cannot encode yet")


def _uuid_text(value: Any) -> str:
    # The backup selects UUIDs as text: 32 hex digits from SQLite, the dashed form from PostgreSQL.
    if isinstance(value, str):
        if len(value) == 32:
            return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        return value
    return str(value)


def _time_text(value: Any) -> str:
    # SQLite's naive-UTC text as stored (``YYYY-MM-DD HH:MM:SS.ffffff``), or an aware datetime from PostgreSQL.
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " ":
            return f"{value[:10]}T{value[11:]}Z"
        parsed = datetime.fromisoformat(value)
        value = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return encode_time(value)


_Encoder = Callable[[Any], Any]


def _vector_text(value: Any) -> str:
    # Archived as float32 little-endian bytes in base64 whichever backend it comes from: SQLite stores those bytes,
    # pgvector answers its text form "[0.1,0.2,…]" (each float32 printed so that it parses back to itself).
    if isinstance(value, str):
        value = [float(x) for x in value.strip("[]").split(",") if x]
    if isinstance(value, list | tuple):
        value = struct.pack(f"<{len(value)}f", *value)
    return base64.b64encode(bytes(value)).decode("ascii")


def _pg_vector(value: str) -> str:
    data = base64.b64decode(value, validate=True)
    return "[" + ",".join(repr(x) for x in struct.unpack(f"<{len(data) // 4}f", data)) + "]"


_ENCODERS: dict[str, _Encoder | None] = {
    "uuid": _uuid_text,
    "timestamp": _time_text,
    "binary": lambda b: base64.b64encode(b).decode("ascii"),
    "vector": _vector_text,
}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def _sqlite_uuid(value: str) -> str:
    # Stored as SQLAlchemy's Uuid stores it on SQLite: 32 lowercase hex digits.
    return (value if _UUID.fullmatch(value) else str(uuid.UUID(value))).replace("-", "")


def _sqlite_time(value: str) -> str:
    # Stored as UtcDateTime + SQLAlchemy's SQLite DateTime store it: naive UTC text with microseconds.
    if _TIME.fullmatch(value):
        return f"{value[:10]} {value[11:26]}"
    return decode_time(value).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pg_uuid(value: str) -> str:
    if not _UUID.fullmatch(value):
        uuid.UUID(value)  # raises ValueError on garbage; PostgreSQL parses the text itself
    return value


def _pg_time(value: str) -> str:
    if not _TIME.fullmatch(value):
        decode_time(value)  # raises ValueError on garbage or a missing time zone
    return value


def _json_text(value: Any) -> str:
    # What SQLAlchemy's JSON type binds (json.dumps; None is JSON null), which PostgreSQL casts to jsonb.
    return json.dumps(value)


# Archive value -> what the DB-API driver takes for the column (None stays SQL NULL, except for JSON).
_DRIVER: dict[str, dict[str, Callable[[Any], Any]]] = {
    "sqlite": {
        "uuid": _sqlite_uuid,
        "timestamp": _sqlite_time,
        "json": _json_text,
        "binary": base64.b64decode,
        "vector": base64.b64decode,
    },
    "postgresql": {
        "uuid": _pg_uuid,
        "timestamp": _pg_time,
        "json": _json_text,
        "binary": base64.b64decode,
        "vector": _pg_vector,
    },
}


class RowCodec:
    """Turns a table's rows into archive lines and back (one instance per table)."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.columns = tuple(ColumnSpec(c.name, _column_kind(c)) for c in table.columns)
        self.names = tuple(c.name for c in self.columns)
        self._name_set = frozenset(self.names)
        self._encoders = [(i, c.name, _ENCODERS.get(c.kind)) for i, c in enumerate(self.columns)]
        self.tenant_key = "id" if table.name == "tenants" else "tenant_id"

    def encode(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """Lines for ``rows`` (tuples in the table's column order), each ending with a newline."""
        dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode
        lines = []
        for row in rows:
            obj = {}
            for index, name, encoder in self._encoders:
                value = row[index]
                obj[name] = value if encoder is None or value is None else encoder(value)
            lines.append(dumps(obj))
        lines.append("")
        return "\n".join(lines).encode()

    def decode(self, line: bytes) -> dict[str, Any]:
        """The archived values of one line (UUIDs and timestamps still text).

        Raises:
            ValueError: the line is not a row of this table.
        """
        row = json.loads(line)
        if not isinstance(row, dict) or row.keys() != self._name_set:
            raise ValueError(f"not a row of {self.table.name}")
        return row

    def for_driver(
        self, dialect: str, *, bytes_vectors: frozenset[str] = frozenset()
    ) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        """A function turning decoded rows into parameter tuples for ``insert_sql``, in the form the DB-API driver
        takes and SQLAlchemy's column types would have produced: the restore inserts below SQLAlchemy, which
        halves its cost. The verification (and the tests) read the rows back through SQLAlchemy.

        ``bytes_vectors`` names vector columns that PostgreSQL holds as ``bytea`` (a server without pgvector).
        """
        converters = _DRIVER[dialect]
        plan = [
            (c.name, base64.b64decode if c.name in bytes_vectors else converters.get(c.kind), c.kind == "json")
            for c in self.columns
        ]

        def convert(row: dict[str, Any]) -> tuple[Any, ...]:
            values = []
            for name, converter, always in plan:
                value = row[name]
                if converter is not None and (value is not None or always):
                    value = converter(value)
                values.append(value)
            return tuple(values)

        return convert

    def insert_sql(self, dialect: Any) -> str:
        """``INSERT INTO t (columns…) VALUES (?, …)`` in the placeholder style of ``dialect`` (qmark or format)."""
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        columns = ", ".join(quote(name) for name in self.names)
        return f"INSERT INTO {quote(self.table.name)} ({columns}) VALUES ({', '.join([mark] * len(self.names))})"


# -- writing ------------------------------------------------------------------------------------------------------


class TableSink:
    """The file of one table being written: counts rows and bytes and hashes them as they go."""

    def __init__(self, path: Path, name: str, codec: RowCodec) -> None:
        self.name = name
        self.codec = codec
        self.file = f"{TABLES_DIR}/{name}.jsonl"
        self._fh = path.open("wb")
        self._hash = hashlib.sha256()
        self.rows = 0
        self.bytes = 0

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        data = self.codec.encode(rows)
        self._fh.write(data)
        self._hash.update(data)
        self.rows += len(rows)
        self.bytes += len(data)

    def close(self, metadata: dict[str, Any] | None = None) -> TableEntry:
        self._fh.close()
        primary_key = tuple(c.name for c in self.codec.table.primary_key.columns)
        return TableEntry(
            name=self.name,
            file=self.file,
            rows=self.rows,
            bytes=self.bytes,
            sha256=self._hash.hexdigest(),
            columns=self.codec.columns,
            primary_key=primary_key,
            metadata=metadata or {},
        )


def archive_kind(path: Path, *, compress: bool) -> tuple[str, Path]:
    """``(kind, final path)``: a folder, ``tar`` or ``tar.gz`` (``compress`` adds ``.tar.gz`` when missing)."""
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz", path
    if compress:
        return "tar.gz", path.with_name(path.name + (".gz" if name.endswith(".tar") else ".tar.gz"))
    if name.endswith(".tar"):
        return "tar", path
    return "dir", path


class ArchiveWriter:
    """Writes an archive into a hidden staging folder beside the target, then moves (or packs) it into place.

    Nothing appears at the target path until ``finish``; a failure removes the staging folder. A folder archive
    is renamed into place; a tar is packed from the folder with the manifest first, so ``tar tf`` and streaming
    readers see it before the tables.
    """

    def __init__(self, path: str | os.PathLike[str], *, compress: bool = False) -> None:
        self.kind, self.path = archive_kind(Path(path).expanduser(), compress=compress)
        if self.path.exists() and not (self.path.is_dir() and not any(self.path.iterdir())):
            raise BackupError(f"{self.path} already exists: choose a new path, or remove it first")
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise BackupError(f"{self.path.parent} is a file, not a folder: choose another path for the archive")
        self._staging = self.path.parent / f".{self.path.name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            # A dated target (backups/2026-11-25) needs its folders: they are made, as `mkdir -p` would.
            (self._staging / TABLES_DIR).mkdir(parents=True)
        except OSError as error:
            raise BackupError(f"cannot write in {self.path.parent}: {error}") from error
        self.entries: list[TableEntry] = []

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()

    def table(self, table: sa.Table) -> TableSink:
        return TableSink(self._staging / TABLES_DIR / f"{table.name}.jsonl", table.name, RowCodec(table))

    def add(self, entry: TableEntry) -> None:
        self.entries.append(entry)

    def finish(self, manifest: BackupManifest, signing_key: SigningKey | None = None) -> Path:
        """Write the manifest (and its signature, with a key) and put the archive at its path (packing it first
        for tar kinds)."""
        try:
            raw = manifest.to_json()
            (self._staging / MANIFEST_NAME).write_bytes(raw)
            names = [MANIFEST_NAME]
            if signing_key is not None:
                (self._staging / SIGNATURE_NAME).write_bytes(sign_manifest(raw, signing_key))
                names.append(SIGNATURE_NAME)
            if self.kind == "dir":
                if self.path.exists():
                    self.path.rmdir()  # the empty folder we were allowed to fill
                self._staging.rename(self.path)
                return self.path
            packed = self._staging.with_name(self._staging.name + ".tar")
            mode = "w:gz" if self.kind == "tar.gz" else "w"
            options: dict[str, Any] = {"compresslevel": 6} if self.kind == "tar.gz" else {}
            with tarfile.open(packed, mode, format=tarfile.PAX_FORMAT, **options) as tar:  # type: ignore[call-overload]
                mtime = int(manifest.created_at.timestamp())
                for name in [*names, *(t.file for t in manifest.tables)]:
                    info = tar.gettarinfo(str(self._staging / name), arcname=name)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mode = 0o644
                    info.mtime = mtime
                    with (self._staging / name).open("rb") as fh:
                        tar.addfile(info, fh)
            packed.rename(self.path)
            shutil.rmtree(self._staging)
            return self.path
        except OSError as error:
            self.abort()
            raise BackupError(f"cannot write the archive {self.path}: {error}") from error

    def abort(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging.with_name(self._staging.name + ".tar").unlink(missing_ok=True)


def table_entries_match(entry: TableEntry, codec: RowCodec) -> bool:
    """Whether an archived table has exactly the columns (names and kinds) of this code's table."""
    return {(c.name, c.kind) for c in entry.columns} == {(c.name, c.kind) for c in codec.columns}
