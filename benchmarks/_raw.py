"""The baselines: mnemostore's rows and statements sent straight through the DB-API driver (sqlite3, psycopg 3).

Rows are encoded exactly as mnemostore's column types store them (on SQLite: UUIDs as 32-digit hex, timestamps as
naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` text, JSON via ``json.dumps``), so mnemostore can read what the baselines
wrote; ``bench_core.py`` checks that after each run. Every timed call also does the work an application using the
driver would have to do: new UUIDv7 ids, the timestamp, the metadata JSON.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mnemostore.domain import Message, NewMessage, Role, new_id

__all__ = ["COLUMNS", "RawPostgres", "RawSqlite", "RawStore"]

Row = tuple[Any, ...]
Params = Sequence[Any] | Mapping[str, Any]

COLUMNS = (
    "tenant_id",
    "id",
    "conversation_id",
    "seq",
    "role",
    "content",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "metadata",
    "created_at",
    "idempotency_key",
)

# The statements mnemostore issues (see AsyncConversationRepository.reserve, AsyncTenantRepository.charge,
# AsyncMessageRepository.insert_many/page), with ``{p}`` for the driver's placeholder.
_RESERVE = (
    "UPDATE conversations SET last_activity_at={p}, message_count=message_count + {p}, "
    "total_tokens=total_tokens + {p}, content_bytes=content_bytes + {p}, last_seq=last_seq + {p} "
    "WHERE tenant_id = {p} AND id = {p} RETURNING last_seq"
)
_CHARGE = (
    "UPDATE tenant_usage SET users=users + {p}, conversations=conversations + {p}, messages=messages + {p}, "
    "tokens=tokens + {p}, storage_bytes=storage_bytes + {p} "
    "WHERE tenant_id = {p} "
    "AND messages + {p} <= coalesce((SELECT t.max_messages FROM (SELECT * FROM tenants WHERE id = {p}) AS t), "
    "messages + {p}) "
    "AND storage_bytes + {p} <= coalesce((SELECT t.max_storage_bytes FROM (SELECT * FROM tenants WHERE id = {p}) "
    "AS t), storage_bytes + {p})"
)
_INSERT = f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({', '.join(['{p}'] * len(COLUMNS))})"
_HISTORY = (
    f"SELECT {', '.join(COLUMNS)} FROM messages WHERE tenant_id = {{p}} AND conversation_id = {{p}} "
    "ORDER BY seq DESC LIMIT {p}"
)

# Experiments of profile_core.py (alternative write shapes, not mnemostore's SQL).
_APPEND_MAX_SEQ = (
    f"INSERT INTO messages ({', '.join(COLUMNS)}) SELECT ?, ?, ?, coalesce(max(seq), 0) + 1, "
    f"{', '.join(['?'] * (len(COLUMNS) - 4))} FROM messages WHERE tenant_id = ? AND conversation_id = ?"
)
_APPEND_CTE = f"""
WITH r AS (
    UPDATE conversations SET last_activity_at = %(now)s, message_count = message_count + 1,
        total_tokens = total_tokens + %(tokens)s, content_bytes = content_bytes + %(bytes)s, last_seq = last_seq + 1
    WHERE tenant_id = %(tenant)s AND id = %(conversation)s RETURNING last_seq
), u AS (
    UPDATE tenant_usage SET messages = messages + 1, tokens = tokens + %(tokens)s,
        storage_bytes = storage_bytes + %(bytes)s
    WHERE tenant_id = %(tenant)s
      AND messages + 1 <= coalesce((SELECT max_messages FROM tenants WHERE id = %(tenant)s), messages + 1)
      AND storage_bytes + %(bytes)s
          <= coalesce((SELECT max_storage_bytes FROM tenants WHERE id = %(tenant)s), storage_bytes + %(bytes)s)
    RETURNING 1
)
INSERT INTO messages ({", ".join(COLUMNS)})
SELECT %(tenant)s, %(id)s, %(conversation)s, r.last_seq, %(role)s, %(content)s, %(model)s, %(prompt_tokens)s,
    %(completion_tokens)s, %(metadata)s, %(now)s, %(idempotency_key)s
FROM r, u
RETURNING seq
"""


class RawStore(ABC):
    """One driver connection scoped to one tenant, doing what mnemostore does with no layer in between."""

    placeholder = "?"
    # First statement of mnemostore's transactions where row-level security needs the tenant (PostgreSQL).
    bind_tenant_sql: str | None = None

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self.tenant = self._uuid(tenant_id)
        p = self.placeholder
        self.reserve_sql = _RESERVE.format(p=p)
        self.charge_sql = _CHARGE.format(p=p)
        self.insert_sql = _INSERT.format(p=p)
        self.history_sql = _HISTORY.format(p=p)

    # -- encoding hooks ---------------------------------------------------------------------------------------

    @staticmethod
    @abstractmethod
    def _uuid(value: uuid.UUID) -> Any: ...

    @staticmethod
    @abstractmethod
    def _json(value: dict[str, Any]) -> Any: ...

    @staticmethod
    @abstractmethod
    def _now() -> Any: ...

    @abstractmethod
    def _decode(self, row: Sequence[Any]) -> Message: ...

    # -- driver hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _execute(self, sql: str, params: Params) -> list[Any]: ...

    @abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    @contextmanager
    def _transaction(self) -> Iterator[None]: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- operations -------------------------------------------------------------------------------------------

    def _rows(self, conversation: Any, first_seq: int, messages: Sequence[NewMessage], now: Any) -> list[Row]:
        tenant, uuid_, json_ = self.tenant, self._uuid, self._json
        return [
            (
                tenant,
                uuid_(new_id()),
                conversation,
                first_seq + i,
                m.role.value if isinstance(m.role, Role) else m.role,
                m.content,
                m.model,
                m.prompt_tokens,
                m.completion_tokens,
                json_(m.metadata),
                now,
                m.idempotency_key,
            )
            for i, m in enumerate(messages)
        ]

    def insert_autocommit(self, conversation_id: uuid.UUID, seq: int, message: NewMessage) -> None:
        """One INSERT in its own implicit transaction; the caller tracks ``seq`` (no counters are kept)."""
        (row,) = self._rows(self._uuid(conversation_id), seq, [message], self._now())
        self._execute(self.insert_sql, row)

    def insert_many(self, conversation_id: uuid.UUID, first_seq: int, messages: Sequence[NewMessage]) -> None:
        """``executemany`` of the rows in one transaction; the caller tracks ``seq`` (no counters are kept)."""
        rows = self._rows(self._uuid(conversation_id), first_seq, messages, self._now())
        with self._transaction():
            self._executemany(self.insert_sql, rows)

    def append_same_sql(
        self, conversation_id: uuid.UUID, messages: Sequence[NewMessage], *, charge: bool = True
    ) -> int:
        """mnemostore's append, statement for statement: reserve seqs, charge usage, insert; one transaction.

        ``charge=False`` leaves out the tenant-usage UPDATE (an experiment of profile_core.py, not mnemostore's SQL).
        """
        count = len(messages)
        tokens = sum(m.prompt_tokens + m.completion_tokens for m in messages)
        size = sum(len(m.content.encode()) for m in messages)
        conversation = self._uuid(conversation_id)
        tenant = self.tenant
        now = self._now()
        with self._transaction():
            if self.bind_tenant_sql is not None:
                self._execute(self.bind_tenant_sql, (str(self.tenant_id),))
            ((last,),) = self._execute(self.reserve_sql, (now, count, tokens, size, count, tenant, conversation))
            if charge:
                self._execute(
                    self.charge_sql, (0, 0, count, tokens, size, tenant, count, tenant, count, size, tenant, size)
                )
            rows = self._rows(conversation, last - count + 1, messages, now)
            if count == 1:
                self._execute(self.insert_sql, rows[0])
            else:
                self._executemany(self.insert_sql, rows)
        return int(last)

    def history(self, conversation_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` messages, oldest first, as dicts (driver-level types)."""
        rows = self._execute(self.history_sql, (self.tenant, self._uuid(conversation_id), limit))
        rows.reverse()
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    def history_typed(self, conversation_id: uuid.UUID, limit: int) -> list[Message]:
        """The same page decoded into mnemostore's ``Message`` objects (UUIDs, aware datetimes, parsed JSON)."""
        rows = self._execute(self.history_sql, (self.tenant, self._uuid(conversation_id), limit))
        rows.reverse()
        return [self._decode(row) for row in rows]


class RawSqlite(RawStore):
    """sqlite3 in autocommit mode with mnemostore's PRAGMAs; transactions are explicit ``BEGIN IMMEDIATE``."""

    def __init__(self, path: str, tenant_id: uuid.UUID, *, busy_timeout_ms: int = 30_000) -> None:
        super().__init__(tenant_id)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", f"busy_timeout={busy_timeout_ms}"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.cur = self.conn.cursor()

    @staticmethod
    def _uuid(value: uuid.UUID) -> str:
        return value.hex

    @staticmethod
    def _json(value: dict[str, Any]) -> str:
        return json.dumps(value)

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def _decode(self, row: Sequence[Any]) -> Message:
        return Message(
            tenant_id=uuid.UUID(hex=row[0]),
            id=uuid.UUID(hex=row[1]),
            conversation_id=uuid.UUID(hex=row[2]),
            seq=row[3],
            role=Role(row[4]),
            content=row[5],
            model=row[6],
            prompt_tokens=row[7],
            completion_tokens=row[8],
            metadata=json.loads(row[9]),
            created_at=datetime.fromisoformat(row[10]).replace(tzinfo=UTC),
            idempotency_key=row[11],
        )

    def _execute(self, sql: str, params: Params) -> list[Any]:
        return self.cur.execute(sql, params).fetchall()

    def append_max_seq(self, conversation_id: uuid.UUID, message: NewMessage) -> None:
        """Experiment: one autocommit INSERT taking ``max(seq) + 1`` (atomic and gap-free under SQLite's single
        writer lock), with no conversation or usage counters kept."""
        conversation = self._uuid(conversation_id)
        (row,) = self._rows(conversation, 0, [message], self._now())
        self.cur.execute(_APPEND_MAX_SEQ, (*row[:3], *row[4:], self.tenant, conversation))

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cur.executemany(sql, rows)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.cur.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.cur.execute("ROLLBACK")
            raise
        self.cur.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class RawPostgres(RawStore):
    """psycopg 3 in autocommit mode, under the same role and row-level security as mnemostore.

    Like mnemostore's connect hook, a superuser/BYPASSRLS login drops to ``app_role``; the tenant is bound for the
    whole session once (mnemostore binds it per transaction, which ``append_same_sql`` reproduces).
    """

    placeholder = "%s"
    bind_tenant_sql = "SELECT set_config('mnemostore.tenant_id', %s, true)"

    def __init__(self, conninfo: str, tenant_id: uuid.UUID, *, app_role: str = "mnemostore_app") -> None:
        super().__init__(tenant_id)
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.cur = self.conn.cursor()
        bypasses, role_exists = self.cur.execute(
            "SELECT rolsuper OR rolbypassrls, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) "
            "FROM pg_roles WHERE rolname = current_user",
            (app_role,),
        ).fetchone() or (False, False)
        if bypasses and role_exists:
            self.cur.execute(f'SET ROLE "{app_role}"')
        self.cur.execute("SELECT set_config('mnemostore.tenant_id', %s, false)", (str(tenant_id),))

    @staticmethod
    def _uuid(value: uuid.UUID) -> uuid.UUID:
        return value

    @staticmethod
    def _json(value: dict[str, Any]) -> Jsonb:
        return Jsonb(value)

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    def _decode(self, row: Sequence[Any]) -> Message:
        return Message(
            tenant_id=row[0],
            id=row[1],
            conversation_id=row[2],
            seq=row[3],
            role=Role(row[4]),
            content=row[5],
            model=row[6],
            prompt_tokens=row[7],
            completion_tokens=row[8],
            metadata=row[9],
            created_at=row[10].astimezone(UTC),
            idempotency_key=row[11],
        )

    def _execute(self, sql: str, params: Params) -> list[Any]:
        self.cur.execute(sql, params)
        return self.cur.fetchall() if self.cur.description is not None else []

    def append_cte(self, conversation_id: uuid.UUID, message: NewMessage) -> int:
        """Experiment: mnemostore's append (seq reservation, quota check, insert) as one statement with
        data-modifying CTEs, in a transaction that binds the tenant like mnemostore's."""
        now = self._now()
        size = len(message.content.encode())
        params = {
            "tenant": self.tenant_id,
            "conversation": conversation_id,
            "id": new_id(),
            "now": now,
            "tokens": message.prompt_tokens + message.completion_tokens,
            "bytes": size,
            "role": message.role.value if isinstance(message.role, Role) else message.role,
            "content": message.content,
            "model": message.model,
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "metadata": Jsonb(message.metadata),
            "idempotency_key": message.idempotency_key,
        }
        with self._transaction():
            self.cur.execute(self.bind_tenant_sql, (str(self.tenant_id),))
            ((seq,),) = self._execute(_APPEND_CTE, params)
        return int(seq)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cur.executemany(sql, rows)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def close(self) -> None:
        self.conn.close()
