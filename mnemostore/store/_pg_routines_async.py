"""The chat-history hot path on PostgreSQL: the PL/pgSQL routines of migration 0007, one autocommit statement each
(async; the sync twin ``_pg_routines.py`` is generated from this file). Imported only for PostgreSQL stores: it
needs psycopg, which an SQLite-only install does not have.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import exc

from mnemostore.config import Settings
from mnemostore.domain import Message
from mnemostore.errors import BackendUnavailable, ConflictError, ConversationNotFound, InvalidInput
from mnemostore.store._citus import on_citus
from mnemostore.store._failures import database_unreachable
from mnemostore.store._instrument import report_query
from mnemostore.store._mapping import messages_from_columns
from mnemostore.store._outcomes import AppendOutcome, UsageRefused
from mnemostore.store._routines_async import AsyncHotPath

__all__ = ["AsyncPostgresHotPath"]

_APPEND: Final = "SELECT last_seq, existing FROM mnemostore_append_messages(%s, %s, %s, %s, %s)"
_HISTORY: Final = "SELECT * FROM mnemostore_history(%s, %s, %s, %s, %s)"
_NO_CONVERSATION: Final = "MN404"
_ATTEMPTS: Final = (1, 2)
_USAGE_REFUSED: Final = "MN429"
_ROW_FIELDS: Final = (
    "id",
    "role",
    "content",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "metadata",
    "idempotency_key",
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class AsyncPostgresHotPath(AsyncHotPath):
    """The PL/pgSQL routines of migration 0007, one autocommit statement each.

    On a Citus coordinator the call goes whole to the tenant's worker (a distributed function, migration 0013).
    A call routed there just before Citus moved the tenant's shard group away runs on the old placement, which no
    longer serves the tenant, and reports the conversation missing. The routine raised, so it wrote nothing: a
    missing conversation is asked once more there, and the second call is routed to the group's new worker.
    """

    _citus = False  # learnt from the connection of each call (``_call``)

    async def append(
        self,
        tenant_id: uuid.UUID,
        conversation_id: uuid.UUID,
        rows: Sequence[dict[str, Any]],
        *,
        sizes: Sequence[int],
        now: datetime,
        job_ids: Sequence[uuid.UUID] | None,
    ) -> AppendOutcome:
        payload = []
        for index, row in enumerate(rows):
            item = {name: row[name] for name in _ROW_FIELDS}
            item["metadata"] = self._sealed(tenant_id, row["metadata"])
            item["id"] = str(row["id"])
            item["bytes"] = sizes[index]
            if job_ids is not None:
                item["job_id"] = str(job_ids[index])
            payload.append(item)
        params = (tenant_id, conversation_id, now, Jsonb(payload, dumps=_dumps), job_ids is not None)
        for attempt in _ATTEMPTS:
            try:
                async with self._call("insert", conversation_id) as conn:
                    cursor = await conn.execute(_APPEND, params)
                    result = await cursor.fetchone()
                break
            except ConversationNotFound:
                if attempt == _ATTEMPTS[-1] or not self._citus:
                    raise
        assert result is not None
        last_seq, existing = result
        return AppendOutcome(last_seq=last_seq, existing=frozenset(existing or ()))

    async def history(
        self,
        tenant_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        limit: int,
        before: int | None = None,
        after: int | None = None,
    ) -> tuple[int, list[Message]]:
        direction = "after" if after is not None else "before"
        seq = after if after is not None else before
        for attempt in _ATTEMPTS:
            try:
                async with self._call("select", conversation_id) as conn:
                    cursor = await conn.execute(_HISTORY, (tenant_id, conversation_id, limit, direction, seq))
                    rows = await cursor.fetchall()
                break
            except ConversationNotFound:
                if attempt == _ATTEMPTS[-1] or not self._citus:
                    raise
        last_seq = int(rows[0][0])
        if rows[0][1] is None:
            return last_seq, []
        if direction != "after":
            rows.reverse()
        # The routine's columns are last_seq, then HISTORY_COLUMNS.
        return last_seq, messages_from_columns(tenant_id, conversation_id, rows, self._codec.open_metadata, first=1)

    @asynccontextmanager
    async def _call(self, kind: str, conversation_id: uuid.UUID) -> AsyncIterator[Any]:
        """A pooled connection in autocommit for one statement; its time goes to the query observers."""
        try:
            async with self._engine.connect() as pooled:
                if True:  # ASYNC
                    fairy = await pooled.get_raw_connection()
                else:
                    fairy = pooled.connection
                conn = fairy.driver_connection
                assert conn is not None
                self._citus = on_citus(pooled)
                await conn.set_autocommit(True)
                started = time.perf_counter()
                try:
                    yield conn
                except psycopg.OperationalError:
                    # The connection is gone; SQLAlchemy did not see the error, so drop it from the pool here.
                    await pooled.invalidate()
                    raise
                finally:
                    if not conn.closed:
                        await conn.set_autocommit(False)
                report_query(self._engine, kind, time.perf_counter() - started)
        except psycopg.Error as error:
            raise _translate(error, conversation_id, self._settings) from error
        except exc.DBAPIError as error:
            # The pool could not open a connection (the server is down, restarting or refusing): SQLAlchemy wraps
            # the driver's error. That is the database being unavailable (503), not a fault of the store (500).
            if isinstance(error.orig, psycopg.Error):
                raise _translate(error.orig, conversation_id, self._settings) from error
            raise database_unreachable(self._settings, type(error.orig or error).__name__) from error


def _translate(error: psycopg.Error, conversation_id: uuid.UUID, settings: Settings) -> Exception:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if error.sqlstate == _NO_CONVERSATION:
        return ConversationNotFound(conversation_id)
    if error.sqlstate == _USAGE_REFUSED:
        return UsageRefused(message)
    if isinstance(error, psycopg.IntegrityError):
        return ConflictError(f"the write conflicts with existing data ({message}); nothing was written")
    if isinstance(error, psycopg.DataError):
        return InvalidInput(f"the database refused a value ({message}); nothing was written")
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return database_unreachable(settings, message)
    return BackendUnavailable(f"database error at {settings.redacted_url()}: {message}")
