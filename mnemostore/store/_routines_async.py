"""The chat-history hot path: an append and a history page, each one call on the driver (async; the sync twin
``_routines.py`` is generated from this file).

PostgreSQL: both call the PL/pgSQL functions of migration 0007 on a pooled connection in autocommit: one statement
is one atomic transaction, bound to the tenant inside the function, so nothing else is sent (no BEGIN, no tenant
binding, no COMMIT). SQLite: both run as one unit of work on the ``sqlite3`` connection (``_sqlite_units``), in one
hop to aiosqlite's thread under this twin.

Both bypass SQLAlchemy's execution layer, which costs more per call than the statements themselves: statement
timing is reported to the engine's query observers here, and driver errors become ``mnemostore.errors``
exceptions here, as ``AsyncDatabase`` does for every other statement.
"""

from __future__ import annotations

import functools
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from mnemostore.config import Settings
from mnemostore.domain import Message
from mnemostore.errors import BackendUnavailable, ConflictError
from mnemostore.store import _mapping as m
from mnemostore.store._crypto import FieldCodec
from mnemostore.store._failures import database_unreachable
from mnemostore.store._instrument import report_query
from mnemostore.store._outcomes import AppendOutcome
from mnemostore.store._sqlite_units import SqliteStatements, append_unit, history_unit, statements_for

__all__ = ["AsyncHotPath", "AsyncSqliteHotPath"]

T = TypeVar("T")


class AsyncHotPath:
    """The two hot-path operations over an engine's pool; ``hot_path_for`` picks the backend's kind."""

    def __init__(self, engine: AsyncEngine, settings: Settings, codec: FieldCodec) -> None:
        self._engine = engine
        self._settings = settings
        self._codec = codec

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
        """Append ``rows`` (from ``message_rows``) in one transaction, all or nothing: they take the next sequence
        numbers in order, the conversation's counters and the tenant's usage move, and the outbox gets ``job_ids``
        (one per row; None: nothing to index). When the conversation already holds any of their idempotency keys,
        nothing is written and the outcome names those keys, so the caller can tell a replay from a key reused for
        another message before anything is committed.

        Raises:
            ConversationNotFound; UsageRefused (nothing was written).
        """
        raise NotImplementedError

    async def history(
        self,
        tenant_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        limit: int,
        before: int | None = None,
        after: int | None = None,
    ) -> tuple[int, list[Message]]:
        """(the conversation's last_seq, read first; up to ``limit`` messages next to a sequence number, in
        conversation order): with ``after``, the oldest ones newer than it; otherwise the newest ones older than
        ``before`` (or the newest of all). Every message up to that last_seq is in the page's range.

        Raises:
            ConversationNotFound.
        """
        raise NotImplementedError

    def _sealed(self, tenant_id: uuid.UUID, metadata: Any) -> Any:
        if not self._codec.encrypts:
            return metadata
        return self._codec.seal("messages", tenant_id, {"metadata": metadata})["metadata"]


class AsyncSqliteHotPath(AsyncHotPath):
    """The same two operations as units of work on the ``sqlite3`` connection (``_sqlite_units``)."""

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
        if self._codec.encrypts:
            rows = [{**row, "metadata": self._sealed(tenant_id, row["metadata"])} for row in rows]
        unit = functools.partial(
            append_unit,
            statements=self._statements(),
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            rows=rows,
            sizes=sizes,
            now=now,
            job_ids=job_ids,
        )
        return await self._run("insert", unit)

    async def history(
        self,
        tenant_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        limit: int,
        before: int | None = None,
        after: int | None = None,
    ) -> tuple[int, list[Message]]:
        direction = "after" if after is not None else "newest" if before is None else "before"
        unit = functools.partial(
            history_unit,
            statements=self._statements(),
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            limit=limit,
            direction=direction,
            seq=after if after is not None else before,
        )
        last_seq, rows = await self._run("select", unit)
        if direction != "after":
            rows.reverse()
        return last_seq, m.messages_from_columns(tenant_id, conversation_id, rows, self._codec.open_metadata)

    def _statements(self) -> SqliteStatements:
        return statements_for(self._engine.dialect)

    async def _run(self, kind: str, unit: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``unit`` on a pooled connection's ``sqlite3`` connection; its time goes to the query observers."""
        try:
            async with self._engine.connect() as pooled:
                if True:  # ASYNC
                    fairy = await pooled.get_raw_connection()
                else:
                    fairy = pooled.connection
                driver: Any = fairy.driver_connection
                started = time.perf_counter()
                result: T
                if True:  # ASYNC
                    # One hop to aiosqlite's thread for the whole unit, not one per statement.
                    result = await driver._execute(lambda: unit(driver._conn))
                else:
                    result = unit(driver)
                report_query(self._engine, kind, time.perf_counter() - started)
                return result
        except sqlite3.Error as error:
            raise _translate_sqlite(error, self._settings) from error


def _translate_sqlite(error: sqlite3.Error, settings: Settings) -> Exception:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, sqlite3.IntegrityError):
        return ConflictError(f"the write conflicts with existing data ({message}); nothing was written")
    if isinstance(error, sqlite3.OperationalError):
        return database_unreachable(settings, message)
    return BackendUnavailable(f"database error at {settings.redacted_url()}: {message}")
