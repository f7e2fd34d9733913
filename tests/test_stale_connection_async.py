"""Pooled PostgreSQL connections that die while idle cost no request, with no ping before each transaction.

The server really closes them (``pg_terminate_backend`` from another session): once while they sit in the pool
(the checkout sees the socket readable and drops them) and once after the checkout and before the first statement
(the transaction's first statement fails on it, before anything was written, and is retried on a new connection).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from mnemostore import AsyncMnemoStore
from tests.fix_db import PostgresServer

pytestmark = pytest.mark.asyncio


def _backend_pids(server: PostgresServer, database: str) -> list[int]:
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def _terminate(server: PostgresServer, pids: list[int]) -> None:
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


@pytest.fixture
async def pg_store(pg_server: PostgresServer) -> Any:
    url = pg_server.create_database()
    store = AsyncMnemoStore(url, pool_size=2, max_overflow=0)
    await store.migrate()
    try:
        yield store, url.rsplit("/", 1)[1]
    finally:
        await store.close()
        pg_server.drop_database(url)


async def test_pre_ping_is_off_by_default(pg_store: Any) -> None:
    store, _ = pg_store
    assert store.settings.pool_pre_ping is False


async def test_connections_closed_while_idle_are_replaced(pg_store: Any, pg_server: PostgresServer) -> None:
    store, database = pg_store
    tenant = store.tenant((await store.create_tenant(f"t-{uuid.uuid4().hex[:8]}")).id)
    user = await tenant.create_user(external_id="u")
    conversation = await tenant.create_conversation(user.id)
    await tenant.add_message(conversation.id, role="user", content="before")
    pids = _backend_pids(pg_server, database)
    assert pids, "the store keeps its connections pooled"
    _terminate(pg_server, pids)

    await tenant.add_message(conversation.id, role="user", content="after")
    history = await tenant.get_conversation_history(conversation.id)

    assert [m.content for m in history.messages] == ["before", "after"]
    assert not set(pids) & set(_backend_pids(pg_server, database))


async def test_a_connection_that_dies_after_checkout_is_retried_once(pg_store: Any, pg_server: PostgresServer) -> None:
    store, database = pg_store
    tenant = store.tenant((await store.create_tenant(f"t-{uuid.uuid4().hex[:8]}")).id)
    user = await tenant.create_user(external_id="u")
    conversation = await tenant.create_conversation(user.id)
    killed: list[int] = []

    def kill_once(_dbapi: Any, record: Any, _proxy: Any) -> None:
        # After the store's own checkout check, as a connection that died unnoticed (no FIN yet) would be.
        if not killed:
            pid = record.driver_connection.info.backend_pid
            killed.append(pid)
            _terminate(pg_server, [pid])

    engine = getattr(store._db.engine, "sync_engine", store._db.engine)  # the pool's events live on the sync engine
    event.listen(engine, "checkout", kill_once)
    try:
        count = await tenant.count_messages(conversation.id)
    finally:
        event.remove(engine, "checkout", kill_once)

    assert count == 0
    assert killed and killed[0] not in _backend_pids(pg_server, database)
