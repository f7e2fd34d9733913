"""Engine, transactions and tenant scope (async; the sync twin ``_database.py`` is generated from this file).

Every unit of work runs in one database transaction that is bound to one tenant before its first statement:

* on PostgreSQL the tenant id goes into the transaction-local setting ``mnemostore.tenant_id`` and row-level
  security policies (see migration 0001) filter every table by it. Connections that could bypass those policies
  (a superuser, a BYPASSRLS role) switch to the unprivileged ``pg_app_role`` as soon as they are opened, so the
  database, not only our code, keeps tenants apart;
* on SQLite the repositories add ``tenant_id = ?`` to every statement, and writes take the database lock at
  BEGIN (``BEGIN IMMEDIATE``), so two writers never deadlock upgrading a read lock.

This module is also the one boundary where driver errors become ``mnemostore.errors`` exceptions.
"""

from __future__ import annotations

import re
import select
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mnemostore.config import Settings
from mnemostore.errors import (
    BackendUnavailable,
    ConflictError,
    InvalidInput,
    MnemostoreError,
    SchemaError,
    SchemaOutOfDate,
)
from mnemostore.store._crypto import FieldCodec
from mnemostore.store._failures import database_unreachable
from mnemostore.store._repositories_async import AsyncUnitOfWork
from mnemostore.store._routines_async import AsyncHotPath, AsyncSqliteHotPath

__all__ = ["AsyncDatabase"]

_WRITE = "mnemostore_write"


class AsyncDatabase:
    """One engine (connection pool) and the way to open tenant-scoped transactions on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dialect = "postgresql" if settings.is_postgres else "sqlite"
        self.engine: AsyncEngine = _create_engine(settings)
        # Parses the encryption keys once: a malformed key fails here, before any I/O.
        self.codec = FieldCodec.from_settings(settings)
        # The append and the history page in one call on the driver each (PostgreSQL: migration 0007's routines).
        self.hot_path: AsyncHotPath = _hot_path_for(self.engine, settings, self.codec)

    async def close(self) -> None:
        await self.engine.dispose()

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at, or None when it was never initialised."""
        async with self._connect() as conn:
            try:
                result = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            except exc.DBAPIError as error:
                if _is_missing_table(error):
                    return None
                raise
            return result.scalar_one_or_none()

    async def check_schema(self, head: str) -> None:
        """Raise SchemaOutOfDate unless the database is exactly at ``head``."""
        try:
            current = await self.schema_revision()
        except exc.DBAPIError as error:
            raise _translate(error, self.settings) from error
        if current != head:
            raise SchemaOutOfDate(current, head)

    async def ping(self) -> None:
        """One round trip to the database (``SELECT 1``); raises BackendUnavailable when it fails."""
        async with self._connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def pg_extension(self, name: str) -> tuple[bool, bool]:
        """(installed in this database, available on the server) for a PostgreSQL extension."""
        async with self._connect() as conn:
            row = (
                await conn.execute(
                    sa.text(
                        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = :name), "
                        "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = :name)"
                    ),
                    {"name": name},
                )
            ).one()
        return bool(row[0]), bool(row[1])

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except exc.DBAPIError as error:
            raise _translate(error, self.settings) from error

    @asynccontextmanager
    async def transaction(
        self,
        tenant_id: uuid.UUID | None,
        *,
        write: bool = False,
        local_settings: Mapping[str, str] | None = None,
    ) -> AsyncIterator[AsyncUnitOfWork]:
        """A unit of work for ``tenant_id`` (None: the admin scope, which sees every tenant).

        It commits when the block ends normally and rolls back when it raises. ``local_settings``: PostgreSQL
        settings for this transaction only (e.g. ``hnsw.ef_search``), set in the same round trip as the tenant.
        """
        try:
            conn = await self._begin(tenant_id, write=write, local_settings=local_settings)
            try:
                yield AsyncUnitOfWork(conn, tenant_id, dialect=self.dialect, codec=self.codec)
            except BaseException:
                await conn.rollback()
                raise
            else:
                await conn.commit()
            finally:
                await conn.close()
        except exc.DBAPIError as error:
            raise _translate(error, self.settings) from error

    async def _begin(
        self, tenant_id: uuid.UUID | None, *, write: bool, local_settings: Mapping[str, str] | None
    ) -> AsyncConnection:
        """A pooled connection in a new transaction, bound to the tenant.

        Connections are not pinged before use (a round trip on every transaction); the pool drops the ones the
        server closed while they sat idle (``_install_postgres_hooks``). One that died unnoticed fails on the
        transaction's first statement, before anything was written: that failure is retried once on a fresh
        connection, so a database restart costs no request.
        """
        for attempt in (1, 2):
            conn = await self.engine.connect()
            try:
                if self.dialect == "postgresql":
                    # BEGIN and the binding in one round trip (the driver would send its BEGIN on its own, then
                    # wait for it): the driver is in autocommit, and the transaction is the one this text opens;
                    # COMMIT and ROLLBACK still end it (psycopg sends them whenever a transaction is open).
                    await conn.execution_options(isolation_level="AUTOCOMMIT", **{_WRITE: write})
                    await conn.begin()
                    await conn.exec_driver_sql("BEGIN; " + _binding_text(tenant_id, local_settings))
                else:
                    await conn.execution_options(**{_WRITE: write})
                    await conn.begin()
            except exc.DBAPIError as error:
                await conn.close()
                if attempt == 2 or not error.connection_invalidated:
                    raise
                continue
            except BaseException:
                await conn.close()
                raise
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def snapshot(self, tenant_id: uuid.UUID | None) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction that sees one consistent snapshot for as long as it lasts (backups, exports).

        It hands out the connection, not a unit of work: its readers (``ops``) stream whole tables in raw form,
        past the repositories.

        On PostgreSQL it is a REPEATABLE READ READ ONLY transaction: every statement sees the data as of the
        first one, and writers carry on unblocked. On SQLite it is one deferred read transaction; in WAL mode
        (which the store turns on) it keeps reading the snapshot its first SELECT saw while writers commit.
        """
        try:
            async with self.engine.connect() as conn, conn.begin():
                if self.dialect == "postgresql":
                    # Must be the transaction's first statement; it ends with the transaction, so a pooled
                    # connection never carries it over.
                    await conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
                    await _bind_tenant(conn, tenant_id)
                yield conn
        except exc.DBAPIError as error:
            raise _translate(error, self.settings) from error


async def _bind_tenant(
    conn: AsyncConnection, tenant_id: uuid.UUID | None, local_settings: Mapping[str, str] | None = None
) -> None:
    # Transaction-local (the third argument), so a pooled connection never carries a tenant over.
    values: dict[str, str] = {}
    if tenant_id is None:
        calls = ["set_config('mnemostore.admin', 'on', true)"]
    else:
        calls = ["set_config('mnemostore.tenant_id', :tenant, true)"]
        values["tenant"] = str(tenant_id)
    for number, (name, value) in enumerate((local_settings or {}).items()):
        calls.append(f"set_config(:name_{number}, :value_{number}, true)")
        values |= {f"name_{number}": name, f"value_{number}": value}
    await conn.execute(sa.text("SELECT " + ", ".join(calls)), values)


_SETTING = re.compile(r"[A-Za-z0-9_.]+")


def _binding_text(tenant_id: uuid.UUID | None, local_settings: Mapping[str, str] | None) -> str:
    """``_bind_tenant``'s statement with its values written in (no parameters, so it can share a round trip with
    BEGIN): a UUID and setting names and values of letters, digits, ``_`` and ``.`` only."""
    if tenant_id is None:
        calls = ["set_config('mnemostore.admin', 'on', true)"]
    else:
        calls = [f"set_config('mnemostore.tenant_id', '{uuid.UUID(str(tenant_id))}', true)"]
    for name, value in (local_settings or {}).items():
        if not (_SETTING.fullmatch(name) and _SETTING.fullmatch(value)):
            raise ValueError(f"setting {name!r} = {value!r}: only letters, digits, '_' and '.' are sent inline")
        calls.append(f"set_config('{name}', '{value}', true)")
    return "SELECT " + ", ".join(calls)


def _hot_path_for(engine: AsyncEngine, settings: Settings, codec: FieldCodec) -> AsyncHotPath:
    """The backend's kind of hot path (PostgreSQL's needs psycopg, which SQLite installs do not have)."""
    if settings.is_postgres:
        from mnemostore.store._pg_routines_async import AsyncPostgresHotPath

        return AsyncPostgresHotPath(engine, settings, codec)
    return AsyncSqliteHotPath(engine, settings, codec)


def _create_engine(settings: Settings) -> AsyncEngine:
    if True:  # ASYNC  # noqa: SIM108
        url = settings.async_database_url
    else:
        url = settings.database_url
    settings.check_driver()
    if settings.is_postgres:
        engine = create_async_engine(
            url,
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout,
            pool_recycle=settings.pool_recycle,
            pool_pre_ping=settings.pool_pre_ping,
            connect_args={"connect_timeout": settings.connect_timeout},
        )
        _install_postgres_hooks(engine, settings.pg_app_role)
    else:
        engine = create_async_engine(url, connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000})
        _install_sqlite_hooks(engine, settings.sqlite_busy_timeout_ms)
    return engine


def _sync_engine(engine: Any) -> sa.Engine:
    return engine.sync_engine if hasattr(engine, "sync_engine") else engine  # type: ignore[no-any-return]


def _install_sqlite_hooks(engine: Any, busy_timeout_ms: int) -> None:
    sync_engine = _sync_engine(engine)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves: the driver's implicit transactions cannot take the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _install_postgres_hooks(engine: Any, app_role: str) -> None:
    sync_engine = _sync_engine(engine)

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # An idle connection has nothing to read: if its socket is readable, the server has closed it (a
        # restart, an idle timeout, pg_terminate_backend) and sent why. Dropping it here costs a poll(), not
        # the round trip of a ping; the pool then hands out another.
        if not _idle_connection_usable(record.driver_connection):
            raise exc.DisconnectionError("the server closed this pooled connection")

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(
            "SELECT rolsuper OR rolbypassrls, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) "
            "FROM pg_roles WHERE rolname = current_user",
            (app_role,),
        )
        bypasses_rls, role_exists = cursor.fetchone()
        if bypasses_rls and role_exists:
            # A role that bypasses row-level security would see every tenant: drop to one that cannot.
            cursor.execute(f'SET ROLE "{app_role}"')
        cursor.close()
        dbapi_connection.commit()


def _idle_connection_usable(driver_connection: Any) -> bool:
    """False when a pooled psycopg connection is closed, broken, or has data waiting while it is idle."""
    if driver_connection.closed or driver_connection.broken:
        return False
    poller = select.poll()
    poller.register(driver_connection.pgconn.socket, select.POLLIN)
    return not poller.poll(0)


def _is_missing_table(error: exc.DBAPIError) -> bool:
    text = str(error.orig).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _translate(error: exc.DBAPIError, settings: Settings) -> MnemostoreError:
    """Map a driver error that escaped the repositories to the error tree."""
    message = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
    if isinstance(error, exc.IntegrityError):
        return ConflictError(f"the write conflicts with existing data ({message}); nothing was written")
    if isinstance(error, exc.DataError):
        return InvalidInput(f"the database refused a value ({message}); nothing was written")
    if _is_missing_table(error):
        return SchemaError(f"the database lacks a table mnemostore needs ({message}): run `mnemostore db upgrade`")
    if isinstance(error, exc.OperationalError | exc.InterfaceError) or error.connection_invalidated:
        return database_unreachable(settings, message)
    return BackendUnavailable(f"database error at {settings.redacted_url()}: {message}")
