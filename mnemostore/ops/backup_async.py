"""Backup, restore, export and erasure (async; ``backup.py`` is generated from this file).

The archive format lives in ``_archive``; this module moves rows between it and the database. The store exposes
these as ``store.backup``/``store.restore`` and ``store.tenant(t).export``/``erase_user``; they are here, beside
the migrations, because they work on whole tables below the repositories.

Backup reads one consistent snapshot (``AsyncDatabase.snapshot``: REPEATABLE READ READ ONLY on PostgreSQL, one
read transaction over WAL on SQLite) while the store keeps serving writes, and streams every table through a
server-side cursor in primary-key order, ``batch_size`` rows at a time, so no table is ever held in memory.

Restore refuses before writing anything: the manifest's format and schema revision must be this code's, the target
must be at that revision and hold none of the data, and every file must match its size, row count and SHA-256.
Then it inserts all tables in foreign-key order, in batches (``executemany`` of driver-level rows, see
``RowCodec.for_driver``), in one transaction, so it writes everything or nothing. With ``verify`` it re-reads
what it wrote, in the same transaction, and compares the counts and checksums with the archive; a mismatch rolls
everything back. It ends by recounting the usage counters of the tenants it created. Rows are inserted as stored
(sealed fields stay sealed), so a restore needs the same keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from mnemostore._version import __version__
from mnemostore.errors import (
    ArchiveCorrupted,
    ArchiveVersionUnsupported,
    BackupError,
    RestoreConflict,
    TenantNotFound,
    UserNotFound,
)
from mnemostore.ops import migrate as migrations
from mnemostore.ops._archive import (
    ArchiveWriter,
    BackupManifest,
    BackupResult,
    ProgressReporter,
    RestoreResult,
    RowCodec,
    Scope,
    TableEntry,
    column_kind,
)
from mnemostore.ops._archive_read import DEFAULT_MAX_ROW_BYTES, ArchiveReader
from mnemostore.ops._signing import SigningKey
from mnemostore.store import AsyncDatabase
from mnemostore.store.tables import UtcDateTime, conversations, metadata, tenant_usage, tenants, users

__all__ = ["backup", "erase_user", "restore", "user_rows"]

BATCH_SIZE: Final = 5000
INSERT_BATCH: Final = 2000

Condition = sa.ColumnElement[bool]


# -- what a scope covers ------------------------------------------------------------------------------------------


def user_rows(tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[tuple[sa.Table, list[Condition]]]:
    """The tables holding a user's rows, in foreign-key order, each with the condition that selects them.

    A row is the user's when it references the user, or a row of theirs, through a foreign key: their identities,
    conversations and memories, and the messages, tool executions, checkpoints, events and metrics of their
    conversations. The rule follows the foreign keys, so tables that later issues add are covered by it.
    ``tenants`` comes first with the tenant's own row, which an archive needs to be restorable.
    """
    owned: dict[str, list[Condition]] = {"users": [users.c.tenant_id == tenant_id, users.c.id == user_id]}
    plan: list[tuple[sa.Table, list[Condition]]] = [(tenants, [tenants.c.id == tenant_id])]
    for table in metadata.sorted_tables:
        if table.name in owned:
            plan.append((table, owned[table.name]))
            continue
        links: list[Condition] = []
        for fk in table.foreign_key_constraints:
            parent = fk.referred_table
            if parent.name not in owned:
                continue
            column = next(c for c in fk.columns if c.name != "tenant_id")
            if parent is users:
                links.append(column == user_id)
            else:
                links.append(column.in_(sa.select(parent.c.id).where(*owned[parent.name])))
        if links:
            owned[table.name] = [table.c.tenant_id == tenant_id, sa.or_(*links)]
            plan.append((table, owned[table.name]))
    return plan


def _plan(scope: Scope) -> list[tuple[sa.Table, list[Condition]]]:
    if scope.kind == "user":
        assert scope.tenant_id is not None and scope.user_id is not None
        return user_rows(scope.tenant_id, scope.user_id)
    if scope.kind == "tenant":
        assert scope.tenant_id is not None
        return [(table, [_tenant_column(table) == scope.tenant_id]) for table in metadata.sorted_tables]
    return [(table, []) for table in metadata.sorted_tables]


def _tenant_column(table: sa.Table) -> sa.Column[Any]:
    return table.c.id if table is tenants else table.c.tenant_id


def _pk_order(table: sa.Table, dialect: str) -> list[sa.ColumnElement[Any]]:
    # Byte-wise order on both backends, so the same rows give the same file (and checksum) from either.
    return [
        c.collate("C") if dialect == "postgresql" and isinstance(c.type, sa.String) else c
        for c in table.primary_key.columns
    ]


def _raw_columns(table: sa.Table, dialect: str) -> list[sa.ColumnElement[Any]]:
    """The table's columns, with UUIDs and timestamps as the driver returns them (RowCodec formats them): making
    a UUID or datetime object per value only to turn it back into text would cost a third of a backup."""
    columns: list[sa.ColumnElement[Any]] = []
    for column in table.columns:
        if isinstance(column.type, sa.Uuid):
            raw = sa.cast(column, sa.Text()) if dialect == "postgresql" else sa.type_coerce(column, sa.String())
            columns.append(raw.label(column.name))
        elif isinstance(column.type, UtcDateTime) or column_kind(column) == "vector":
            columns.append(sa.type_coerce(column, sa.String()).label(column.name))
        else:
            columns.append(column)
    return columns


async def _stream(
    conn: AsyncConnection,
    table: sa.Table,
    where: Sequence[Condition],
    *,
    dialect: str,
    batch_size: int,
    sink: Callable[[Sequence[Any]], None],
) -> None:
    """Feed ``sink`` the selected rows of ``table`` in primary-key order, ``batch_size`` rows at a time."""
    query = (
        sa.select(*_raw_columns(table, dialect))
        .where(*where)
        .order_by(*_pk_order(table, dialect))
        .execution_options(yield_per=batch_size)
    )
    if True:  # ASYNC
        result = await conn.stream(query)
    else:
        result = conn.execute(query)
    async for partition in result.partitions():
        sink(partition)


class _Tap:
    """Passes streamed rows on to ``consume`` and tells the progress reporter about them."""

    def __init__(self, table: str, consume: Callable[[Sequence[Any]], None], progress: ProgressReporter | None) -> None:
        self.table = table
        self.consume = consume
        self.progress = progress
        self.rows = 0

    def __call__(self, rows: Sequence[Any]) -> None:
        self.consume(rows)
        self.rows += len(rows)
        if self.progress is not None:
            self.progress.advance(self.table, len(rows))


async def _count(conn: AsyncConnection, table: sa.Table, where: Sequence[Condition]) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one())


# -- backup -------------------------------------------------------------------------------------------------------


async def backup(
    db: AsyncDatabase,
    path: str | os.PathLike[str],
    *,
    scope: Scope | None = None,
    compress: bool = False,
    progress: ProgressReporter | None = None,
    batch_size: int = BATCH_SIZE,
    signing_key: SigningKey | None = None,
) -> BackupResult:
    """Write an archive of ``scope`` (default: everything) at ``path``; see ``AsyncMnemoStore.backup``.

    With ``signing_key`` the archive carries ``signature.json``, an HMAC of the manifest (see ``_signing``).
    """
    started = time.perf_counter()
    scope = scope or Scope()
    head = migrations.head_revision()
    await db.check_schema(head)
    plan = _plan(scope)
    with ArchiveWriter(path, compress=compress) as writer:
        async with db.snapshot(scope.tenant_id) as conn:
            taken_at = datetime.now(UTC)
            await _check_scope_exists(conn, scope)
            if progress is not None:
                progress.start("backup", {table.name: await _count(conn, table, where) for table, where in plan})
            for table, where in plan:
                sink = writer.table(table)
                try:
                    tap = _Tap(table.name, sink.write, progress)
                    await _stream(conn, table, where, dialect=db.dialect, batch_size=batch_size, sink=tap)
                finally:
                    entry = sink.close(await _table_metadata(conn, table, where))
                writer.add(entry)
        manifest = BackupManifest(
            schema_revision=head,
            scope=scope,
            tables=tuple(writer.entries),
            created_at=taken_at,
            source_backend=db.dialect,
            mnemostore_version=__version__,
        )
        if True:  # ASYNC
            final = await asyncio.to_thread(writer.finish, manifest, signing_key)
        else:
            final = writer.finish(manifest, signing_key)
    return BackupResult(
        path=final,
        manifest=manifest,
        seconds=time.perf_counter() - started,
        signed_with=signing_key.key_id if signing_key is not None else None,
    )


async def _table_metadata(conn: AsyncConnection, table: sa.Table, where: Sequence[Condition]) -> dict[str, Any]:
    """What a restore of ``table`` should know beyond its rows: for embeddings, their encoding and models."""
    vectors = [c.name for c in table.columns if column_kind(c) == "vector"]
    if not vectors:
        return {}
    found: dict[str, Any] = {"vector_encoding": {name: "float32-le-base64" for name in vectors}}
    if "model" in table.c and "dimension" in table.c:
        query = sa.select(table.c.model, table.c.dimension).where(*where).distinct()
        found["models"] = {str(model): int(dimension) for model, dimension in await conn.execute(query)}
    return found


async def _check_scope_exists(conn: AsyncConnection, scope: Scope) -> None:
    if scope.tenant_id is not None:
        found = await conn.execute(sa.select(tenants.c.id).where(tenants.c.id == scope.tenant_id))
        if found.first() is None:
            raise TenantNotFound(scope.tenant_id)
    if scope.user_id is not None:
        query = sa.select(users.c.id).where(users.c.tenant_id == scope.tenant_id, users.c.id == scope.user_id)
        if (await conn.execute(query)).first() is None:
            raise UserNotFound(scope.user_id)


# -- restore ------------------------------------------------------------------------------------------------------


def _check_compatible(reader: ArchiveReader, head: str) -> None:
    """Refuse an archive of another schema revision, or whose tables differ from this code's."""
    manifest = reader.manifest
    where = reader.path
    if manifest.schema_revision != head:
        known = [r.revision for r in migrations.history()]
        if manifest.schema_revision in known:
            advice = (
                f"restore it with mnemostore {manifest.mnemostore_version} (which wrote it) into a database at "
                f"{manifest.schema_revision}, then run `mnemostore db upgrade` there"
            )
        else:
            advice = f"upgrade mnemostore to {manifest.mnemostore_version} or later to restore it"
        raise ArchiveVersionUnsupported(
            f"{where} holds data at schema revision {manifest.schema_revision}, this mnemostore restores "
            f"{head} only: {advice}; nothing was written"
        )
    for entry in manifest.tables:
        table = metadata.tables.get(entry.name)
        if table is None:
            raise ArchiveVersionUnsupported(f"{where} holds a table {entry.name!r} that schema {head} lacks")
        codec = RowCodec(table)
        mine = {(c.name, c.kind) for c in codec.columns}
        theirs = {(c.name, c.kind) for c in entry.columns}
        if mine != theirs:
            raise ArchiveVersionUnsupported(
                f"{where}: table {entry.name} has columns {sorted(theirs)}, schema {head} has {sorted(mine)}: "
                "the archive was written by another version of mnemostore"
            )
    if manifest.scope.kind != "user":
        missing = [t.name for t in metadata.sorted_tables if manifest.table(t.name) is None]
        if missing:
            raise ArchiveCorrupted(f"{where}: manifest.json lacks tables {missing}: the archive is incomplete")


def _find_tenant(reader: ArchiveReader, ref: uuid.UUID | str) -> tuple[uuid.UUID, str]:
    """The archived tenant whose id or name is ``ref``."""
    rows = reader.tenants()
    for row in rows:
        if str(ref) in (row.get("id"), row.get("name")):
            return uuid.UUID(row["id"]), str(row["name"])
    names = ", ".join(sorted(str(row.get("name")) for row in rows)) or "none"
    raise TenantNotFound(repr(str(ref)), f" in the archive {reader.path} (its tenants: {names})")


async def _refuse_existing(conn: AsyncConnection, selected: tuple[uuid.UUID, str] | None) -> None:
    if selected is None:
        count = int((await conn.execute(sa.select(sa.func.count()).select_from(tenants))).scalar_one())
        if count:
            raise RestoreConflict(
                f"the target database already holds {count} tenant(s), and a restore never writes over data: "
                "restore into an empty database (create one with `mnemostore --database-url URL init`), or restore "
                "one tenant that it lacks with --tenant; nothing was written"
            )
        return
    tenant_id, name = selected
    query = sa.select(tenants.c.id, tenants.c.name).where((tenants.c.id == tenant_id) | (tenants.c.name == name))
    clash = (await conn.execute(query)).first()
    if clash is not None:
        what = f"tenant {name!r} ({tenant_id})" if clash.id == tenant_id else f"another tenant named {name!r}"
        raise RestoreConflict(
            f"the target database already has {what}: restore into a database without it, or delete it there "
            "first (store.delete_tenant); nothing was written"
        )


async def restore(
    db: AsyncDatabase,
    path: str | os.PathLike[str],
    *,
    tenant: uuid.UUID | str | None = None,
    verify: bool = False,
    progress: ProgressReporter | None = None,
    batch_size: int = INSERT_BATCH,
    signing_key: SigningKey | None = None,
    allow_unsigned: bool = False,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
) -> RestoreResult:
    """Restore an archive into this database; see ``AsyncMnemoStore.restore``.

    With ``signing_key`` the archive's signature is checked before anything else is read (an unsigned archive is
    refused unless ``allow_unsigned``); rows longer than ``max_row_bytes`` are refused unread.
    """
    started = time.perf_counter()
    head = migrations.head_revision()
    if True:  # ASYNC
        reader = await asyncio.to_thread(
            ArchiveReader, path, max_row_bytes=max_row_bytes, signing_key=signing_key, allow_unsigned=allow_unsigned
        )
    else:
        reader = ArchiveReader(
            path, max_row_bytes=max_row_bytes, signing_key=signing_key, allow_unsigned=allow_unsigned
        )
    with reader:
        manifest = reader.manifest
        _check_compatible(reader, head)
        await db.check_schema(head)
        if tenant is None:
            async with db.snapshot(None) as conn:
                await _refuse_existing(conn, None)  # fail fast, before reading the whole archive
        if progress is not None:
            progress.start("check", {t.name: t.rows for t in manifest.tables})

        def checked(entry: TableEntry) -> None:
            if progress is not None:
                progress.advance(entry.name, entry.rows)

        if True:  # ASYNC
            await asyncio.to_thread(reader.verify, checked)
        else:
            reader.verify(checked)
        selected = _find_tenant(reader, tenant) if tenant is not None else None
        if progress is not None:
            progress.start("restore", {t.name: t.rows for t in manifest.tables})
        async with db.transaction(None, write=True) as uow:
            conn = uow.connection
            await _refuse_existing(conn, selected)  # again inside the transaction: nothing slips in between
            written: dict[str, tuple[int, str]] = {}
            tenant_ids: list[uuid.UUID] = []
            for table in metadata.sorted_tables:
                entry = manifest.table(table.name)
                if entry is None:
                    continue
                written[table.name] = await _insert_table(
                    conn, reader, table, entry, selected, tenant_ids, progress=progress, batch_size=batch_size
                )
            if selected is not None and not tenant_ids:
                raise TenantNotFound(selected[0], f" in the archive {reader.path}")
            if verify:
                await _verify(conn, written, selected, dialect=db.dialect, progress=progress)
            for tenant_id in tenant_ids:
                usage = sa.select(tenant_usage.c.tenant_id).where(tenant_usage.c.tenant_id == tenant_id)
                if (await conn.execute(usage)).first() is None:  # a user export carries no usage row
                    zero = {"users": 0, "conversations": 0, "messages": 0, "tokens": 0, "storage_bytes": 0}
                    await conn.execute(sa.insert(tenant_usage).values(tenant_id=tenant_id, **zero))
                await uow.tenants.recount(tenant_id)
    return RestoreResult(
        path=reader.path,
        manifest=manifest,
        tenant_ids=tuple(tenant_ids),
        rows={name: count for name, (count, _) in written.items()},
        verified=verify,
        seconds=time.perf_counter() - started,
        signature=reader.signature_status,
    )


async def _insert_table(
    conn: AsyncConnection,
    reader: ArchiveReader,
    table: sa.Table,
    entry: TableEntry,
    selected: tuple[uuid.UUID, str] | None,
    tenant_ids: list[uuid.UUID],
    *,
    progress: ProgressReporter | None,
    batch_size: int,
) -> tuple[int, str]:
    """Insert the archived rows of one table; returns (rows, SHA-256 of their lines) for the verification."""
    codec = RowCodec(table)
    key = codec.tenant_key
    wanted = str(selected[0]) if selected is not None else None
    # Cheap pre-filter on the canonical bytes; the decoded value decides.
    needle = f'"{key}":"{wanted}"'.encode() if wanted is not None else None
    to_driver = codec.for_driver(conn.dialect.name, bytes_vectors=await _bytea_vectors(conn, codec))
    statement = codec.insert_sql(conn.dialect)
    digest = hashlib.sha256()
    count = 0
    batch: list[tuple[Any, ...]] = []
    for line in reader.lines(entry):
        if needle is not None and needle not in line:
            continue
        try:
            row = codec.decode(line)
            if wanted is not None and row[key] != wanted:
                continue
            batch.append(to_driver(row))
            if table is tenants:
                tenant_ids.append(uuid.UUID(row["id"]))
        except (ValueError, TypeError, AttributeError) as error:
            raise ArchiveCorrupted(f"{reader.path}: a row of {entry.file} cannot be read ({error!r})") from None
        digest.update(line)
        count += 1
        if len(batch) >= batch_size:
            await conn.exec_driver_sql(statement, batch)
            if progress is not None:
                progress.advance(table.name, len(batch))
            batch = []
    if batch:
        await conn.exec_driver_sql(statement, batch)
        if progress is not None:
            progress.advance(table.name, len(batch))
    return count, digest.hexdigest()


async def _bytea_vectors(conn: AsyncConnection, codec: RowCodec) -> frozenset[str]:
    """Vector columns that this PostgreSQL holds as ``bytea`` (no pgvector on the server): they take the bytes."""
    names = [c.name for c in codec.columns if c.kind == "vector"]
    if not names or conn.dialect.name != "postgresql":
        return frozenset()
    query = sa.text(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = :table AND udt_name = 'bytea'"
    )
    rows = await conn.execute(query, {"table": codec.table.name})
    return frozenset({name for (name,) in rows if name in names})


async def _verify(
    conn: AsyncConnection,
    written: dict[str, tuple[int, str]],
    selected: tuple[uuid.UUID, str] | None,
    *,
    dialect: str,
    progress: ProgressReporter | None,
) -> None:
    """Re-read every restored table and compare its rows and checksum with what the archive held."""
    if progress is not None:
        progress.start("verify", {name: count for name, (count, _) in written.items()})
    for name, (expected_rows, expected_sha) in written.items():
        table = metadata.tables[name]
        codec = RowCodec(table)
        where = [_tenant_column(table) == selected[0]] if selected is not None else []
        digest = hashlib.sha256()

        def hash_rows(rows: Sequence[Any], codec: RowCodec = codec, digest: Any = digest) -> None:
            digest.update(codec.encode(rows))

        tap = _Tap(name, hash_rows, progress)
        await _stream(conn, table, where, dialect=dialect, batch_size=BATCH_SIZE, sink=tap)
        if (tap.rows, digest.hexdigest()) != (expected_rows, expected_sha):
            raise ArchiveCorrupted(
                f"verification failed: table {name} reads back {tap.rows} rows (SHA-256 {digest.hexdigest()[:12]}…), "
                f"the archive holds {expected_rows} (SHA-256 {expected_sha[:12]}…); the restore was rolled back"
            )


# -- erasure ------------------------------------------------------------------------------------------------------


async def erase_user(db: AsyncDatabase, tenant_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, int]:
    """Delete a user and every row of theirs; see ``AsyncTenantStore.erase_user``."""
    plan = [(table, where) for table, where in user_rows(tenant_id, user_id) if table is not tenants]
    async with db.transaction(tenant_id, write=True) as uow:
        conn = uow.connection
        # Lock the user and their conversations first: an append racing the erasure either lands before
        # (and is counted and deleted) or fails after (the conversation is gone), never in between.
        found = await conn.execute(
            sa.select(users.c.id).where(users.c.tenant_id == tenant_id, users.c.id == user_id).with_for_update()
        )
        if found.first() is None:
            raise UserNotFound(user_id)
        c = conversations.c
        owned = await conn.execute(
            sa.select(c.message_count, c.total_tokens, c.content_bytes)
            .where(c.tenant_id == tenant_id, c.user_id == user_id)
            .with_for_update()
        )
        totals = owned.all()
        removed = {table.name: await _count(conn, table, where) for table, where in plan}
        await conn.execute(sa.delete(users).where(users.c.tenant_id == tenant_id, users.c.id == user_id))
        # The foreign keys cascade the delete; check that nothing of the user is left.
        left = {table.name: n for table, where in plan if (n := await _count(conn, table, where))}
        if left:
            raise BackupError(f"rows of user {user_id} survived the delete ({left}): nothing was erased")
        await uow.tenants.charge(
            users=-1,
            conversations=-len(totals),
            messages=-sum(int(t[0]) for t in totals),
            tokens=-sum(int(t[1]) for t in totals),
            storage_bytes=-sum(int(t[2]) for t in totals),
        )
    return removed
