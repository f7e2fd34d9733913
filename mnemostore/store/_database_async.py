"""Engine, transactions and tenant scope (async; the sync twin ``_database.py`` is generated from this file).

Every unit of work runs in one database transaction that is bound to one tenant before its first statement:

* on PostgreSQL the tenant id goes into the transaction-local setting ``mnemostore.tenant_id`` and row-level
  security policies (see migrations 0001 and 0008) filter every table by it, for ``pg_app_role`` and its members.
  Connections that could bypass those policies (a superuser, a BYPASSRLS role) switch to ``pg_app_role`` as soon as
  they are opened, so the database, not only our code, keeps tenants apart. The admin scope (no tenant) is a role,
  not a setting: its transactions start with ``SET LOCAL ROLE pg_admin_role``, whose policy sees every tenant, on
  the connections of ``admin_database_url`` when it is set, else on the main ones. A login that may not take that
  role gets AdminAccessUnavailable, and nothing it can set widens what it sees;
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
    AdminAccessUnavailable,
    BackendUnavailable,
    ConflictError,
    InvalidInput,
    MnemostoreError,
    SchemaError,
    SchemaOutOfDate,
)
from mnemostore.store._citus import CITUS, on_citus
from mnemostore.store._crypto import FieldCodec
from mnemostore.store._failures import database_unreachable
from mnemostore.store._mapping import json_value
from mnemostore.store._repositories_async import AsyncUnitOfWork
from mnemostore.store._routines_async import AsyncHotPath, AsyncSqliteHotPath
from mnemostore.store._search_async import vector_column_is_vector

__all__ = ["AsyncDatabase"]

_WRITE = "mnemostore_write"
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
# SQLSTATE insufficient_privilege: what PostgreSQL answers a SET ROLE the session's login may not take.
_INSUFFICIENT_PRIVILEGE = "42501"


class AsyncDatabase:
    """One engine (connection pool) and the way to open tenant-scoped transactions on it; on PostgreSQL with
    ``admin_database_url``, a second small engine for the admin scope."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dialect = "postgresql" if settings.is_postgres else "sqlite"
        self.engine: AsyncEngine = _create_engine(settings)
        # Admin work only: a login of its own, so the application's login need not be able to take the admin role.
        self.admin_engine: AsyncEngine | None = (
            _create_engine(settings, admin=True) if settings.admin_database_url is not None else None
        )
        # Parses the encryption keys once: a malformed key fails here, before any I/O.
        self.codec = FieldCodec.from_settings(settings)
        # The append and the history page in one call on the driver each (PostgreSQL: migration 0007's routines).
        self.hot_path: AsyncHotPath = _hot_path_for(self.engine, settings, self.codec)

    async def close(self) -> None:
        await self.engine.dispose()
        if self.admin_engine is not None:
            await self.admin_engine.dispose()

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """Every engine of the store (query observers listen to all)."""
        return (self.engine,) if self.admin_engine is None else (self.engine, self.admin_engine)

    def _engine_for(self, tenant_id: uuid.UUID | None) -> AsyncEngine:
        if tenant_id is None and self.admin_engine is not None:
            return self.admin_engine
        return self.engine

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

    async def vector_column_is_vector(self) -> bool:
        """Whether ``embeddings.vector`` holds vectors (a catalog question: any login may ask, in no scope)."""
        async with self._connect() as conn:
            return await vector_column_is_vector(conn, self.dialect)

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

        On PostgreSQL the admin scope runs as ``pg_admin_role``; a login that may not take it raises
        AdminAccessUnavailable before anything is read or written. It commits when the block ends normally and
        rolls back when it raises. ``local_settings``: PostgreSQL settings for this transaction only (e.g.
        ``hnsw.ef_search``), set in the same round trip as the tenant.
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
        engine = self._engine_for(tenant_id)
        for attempt in (1, 2):
            conn = await engine.connect()
            try:
                await conn.execution_options(**{_WRITE: write})
                await conn.begin()
                if self.dialect == "postgresql":
                    await self._bind(conn, tenant_id, local_settings)
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
            async with self._engine_for(tenant_id).connect() as conn, conn.begin():
                if self.dialect == "postgresql":
                    # Must be the transaction's first statement; it ends with the transaction, so a pooled
                    # connection never carries it over.
                    await conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
                    await self._bind(conn, tenant_id)
                yield conn
        except exc.DBAPIError as error:
            raise _translate(error, self.settings) from error

    async def _bind(
        self, conn: AsyncConnection, tenant_id: uuid.UUID | None, local_settings: Mapping[str, str] | None = None
    ) -> None:
        try:
            await _bind_tenant(conn, tenant_id, self.settings.pg_admin_role, local_settings)
        except exc.DBAPIError as error:
            if tenant_id is None and getattr(error.orig, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE:
                raise self._admin_refused(error) from error
            raise

    def _admin_refused(self, error: exc.DBAPIError) -> AdminAccessUnavailable:
        role = self.settings.pg_admin_role
        if self.admin_engine is not None:
            where = f"the login of MNEMOSTORE_ADMIN_DATABASE_URL ({_redacted(self.settings.admin_database_url)})"
            advice = f'grant it the role (GRANT "{role}" TO <that login>)'
        else:
            where = f"the login of MNEMOSTORE_DATABASE_URL ({self.settings.redacted_url()})"
            advice = (
                "set MNEMOSTORE_ADMIN_DATABASE_URL to a login that is a member of it (see the README's PostgreSQL "
                "roles), or grant the role to this login (not the hardened deployment)"
            )
        return AdminAccessUnavailable(
            f'admin work (tenants, indexing across tenants, backups) runs as the role "{role}", which {where} may '
            f"not take: {advice}. Tenant work is unaffected"
        )


async def _bind_tenant(
    conn: AsyncConnection,
    tenant_id: uuid.UUID | None,
    admin_role: str,
    local_settings: Mapping[str, str] | None = None,
) -> None:
    # Transaction-local (the third argument), so a pooled connection never carries a tenant or a role over. The
    # admin scope is a role (``set_config('role', …)`` is SET LOCAL ROLE): PostgreSQL lets a login take it only
    # when the login is a member of it, or a superuser, whatever role the connection has switched to since.
    if on_citus(conn):
        await _bind_tenant_citus(conn, tenant_id, admin_role, local_settings or {})
        return
    values: dict[str, str] = {}
    if tenant_id is None:
        calls = ["set_config('role', :admin_role, true)"]
        values["admin_role"] = admin_role
    else:
        calls = ["set_config('mnemostore.tenant_id', :tenant, true)"]
        values["tenant"] = str(tenant_id)
    for number, (name, value) in enumerate((local_settings or {}).items()):
        calls.append(f"set_config(:name_{number}, :value_{number}, true)")
        values |= {f"name_{number}": name, f"value_{number}": value}
    await conn.execute(sa.text("SELECT " + ", ".join(calls)), values)


async def _bind_tenant_citus(
    conn: AsyncConnection, tenant_id: uuid.UUID | None, admin_role: str, local_settings: Mapping[str, str]
) -> None:
    """The same binding on a Citus coordinator, where the settings must reach the workers too.

    The row-level security policies are checked on the workers (each shard has them), and Citus forwards a
    setting to the connections of the transaction only when it is set by a ``SET LOCAL`` statement (with
    ``citus.propagate_set_commands = 'local'``, set on every connection to a coordinator), not by ``set_config``.
    The values are a UUID and the store's own settings, quoted as literals (SET takes no parameters). The admin
    role needs no forwarding: Citus opens the workers' connections as the role the statement runs as.
    """
    statements = []
    if tenant_id is None:
        await conn.execute(sa.text("SELECT set_config('role', :admin_role, true)"), {"admin_role": admin_role})
    else:
        statements.append(f"SET LOCAL mnemostore.tenant_id = '{uuid.UUID(str(tenant_id))}'")
    for name, value in local_settings.items():
        if not _SETTING_NAME.fullmatch(name):
            raise ValueError(f"not a setting name: {name!r}")
        statements.append(f"SET LOCAL {name} = '{value.replace(chr(39), chr(39) * 2)}'")
    for statement in statements:  # one each: Citus forwards the whole text of a statement it propagates
        await conn.exec_driver_sql(statement)


def _redacted(url: str | None) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True) if url else ""


def _hot_path_for(engine: AsyncEngine, settings: Settings, codec: FieldCodec) -> AsyncHotPath:
    """The backend's kind of hot path (PostgreSQL's needs psycopg, which SQLite installs do not have)."""
    if settings.is_postgres:
        from mnemostore.store._pg_routines_async import AsyncPostgresHotPath

        return AsyncPostgresHotPath(engine, settings, codec)
    return AsyncSqliteHotPath(engine, settings, codec)


def _create_engine(settings: Settings, *, admin: bool = False) -> AsyncEngine:
    """The main engine, or (``admin``) the small one on ``admin_database_url`` (one connection, one more under
    load: admin work is occasional, and the server's connections are shared)."""
    if True:  # ASYNC  # noqa: SIM108
        url = settings.async_database_url
    else:
        url = settings.database_url
    if admin and settings.admin_database_url is not None:
        url = settings.admin_database_url  # PostgreSQL's URL is the same for both drivers
    settings.check_driver()
    if settings.is_postgres:
        engine = create_async_engine(
            url,
            pool_size=settings.admin_pool_size if admin else settings.pool_size,
            max_overflow=1 if admin else settings.max_overflow,
            pool_timeout=settings.pool_timeout,
            pool_recycle=settings.pool_recycle,
            pool_pre_ping=settings.pool_pre_ping,
            connect_args={"connect_timeout": settings.connect_timeout},
        )
        # An admin login that bypasses row-level security drops to the admin role, not to the application's.
        _install_postgres_hooks(engine, settings.pg_admin_role if admin else settings.pg_app_role)
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
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(
            "SELECT rolsuper OR rolbypassrls, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s), "
            "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') "
            "FROM pg_roles WHERE rolname = current_user",
            (app_role,),
        )
        bypasses_rls, role_exists, citus = cursor.fetchone()
        if bypasses_rls and role_exists:
            # A role that bypasses row-level security would see every tenant: drop to one that cannot.
            cursor.execute(f'SET ROLE "{app_role}"')
        if citus:
            # A Citus coordinator: the tenant binding must reach the workers (``_bind_tenant_citus``).
            cursor.execute("SET citus.propagate_set_commands = 'local'")
            record.info[CITUS] = True
        # Timestamps come back in UTC, and jsonb through a leaner loader: both run for every message of every
        # page, and a zone such as Etc/UTC would cost a conversion per value.
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.commit()
        _load_json_lean(getattr(dbapi_connection, "driver_connection", dbapi_connection))


def _load_json_lean(driver_connection: Any) -> None:
    from psycopg.types.json import set_json_loads  # PostgreSQL only: SQLite installs have no psycopg

    set_json_loads(_json_loads, driver_connection)


def _json_loads(data: Any) -> Any:
    """``json.loads`` for psycopg: the server sends UTF-8 text, so no sniffing of the bytes' encoding, and
    ``json_value``'s shortcuts (an empty object unparsed, the C scanner)."""
    return json_value(data if isinstance(data, str) else bytes(data).decode())


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
