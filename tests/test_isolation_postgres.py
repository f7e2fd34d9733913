"""PostgreSQL only: the database itself keeps tenants apart (row-level security), and the access paths use indexes.

Part (a) runs on a Citus cluster too (the ``citus`` backend, tests/fix_citus.py), where the policies are checked on
the workers' shards: the raw connections there forward their transaction-local settings to the workers (``SET
LOCAL`` with ``citus.propagate_set_commands``), as the store does. Part (b) is PostgreSQL's planner only.

Part (a) bypasses the store: a raw psycopg connection, switched to the store's unprivileged role
``mnemostore_app``, reads and writes the tables directly, so what is checked is the policy of migration 0001, not
the ``tenant_id = ?`` our repositories add. Part (b) runs EXPLAIN on the statements the store really sends
(captured from its engine while calling the public API), inside a tenant-scoped transaction of the store, that is
as ``mnemostore_app`` with the row-level security predicates in place, on tables of tens of thousands of rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.sql
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mnemostore import AsyncMnemoStore, AsyncTenantStore, GraphChannelValue, GraphWrite
from mnemostore.store.tables import TENANT_TABLES
from tests.support import capture

pytestmark = pytest.mark.postgres_only

APP_ROLE = "mnemostore_app"
ADMIN_ROLE = "mnemostore_admin"
# Every table of the schema, with the column row-level security keys it on.
RLS_TABLES = {"tenants": "id", **dict.fromkeys(TENANT_TABLES, "tenant_id")}
NOTHING: dict[str, list[uuid.UUID]] = {table: [] for table in RLS_TABLES}


@pytest.fixture(scope="module")
def pg_url(backend: str, database_url: str) -> str:
    if backend not in ("postgres", "citus"):
        pytest.skip("row-level security and query plans are PostgreSQL's")
    return database_url


@pytest.fixture(scope="module")
def admin_dsn(pg_url: str) -> str:
    """libpq DSN of the test database, as the (superuser) account the tests connect with."""
    return make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)


def on_citus(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").fetchone()
    return bool(row and row[0])


@contextmanager
def connect(dsn: str, *, role: str | None = None) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if on_citus(conn):  # forward SET LOCAL to the workers, where the shards' policies read it
            conn.execute("SET citus.propagate_set_commands = 'local'")
        if role is not None:
            conn.execute(f'SET ROLE "{role}"')
        yield conn


@pytest.fixture
def app_conn(admin_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A raw connection as ``mnemostore_app``: no store code between the test and the policies."""
    with connect(admin_dsn, role=APP_ROLE) as conn:
        yield conn


def refused() -> AbstractContextManager[Any]:
    """The error PostgreSQL raises when a row fails a policy's WITH CHECK."""
    return pytest.raises(psycopg.errors.InsufficientPrivilege, match="violates row-level security policy")


def set_local(conn: psycopg.Connection[Any], name: str, value: str) -> None:
    """Set ``name`` for the current transaction, the way the store does: ``set_config``, or on Citus ``SET LOCAL``
    (which Citus forwards to the workers)."""
    if on_citus(conn):
        conn.execute(psycopg.sql.SQL("SET LOCAL {} = {}").format(psycopg.sql.SQL(name), psycopg.sql.Literal(value)))
    else:
        conn.execute("SELECT set_config(%s, %s, true)", [name, value])


def set_tenant(conn: psycopg.Connection[Any], tenant_id: uuid.UUID | str) -> None:
    """Scope the current transaction to a tenant, the way the store does (transaction-local)."""
    set_local(conn, "mnemostore.tenant_id", str(tenant_id))


# -- (a) row-level security -----------------------------------------------------------------------------------------


@dataclass
class TwoTenants:
    a: uuid.UUID
    b: uuid.UUID
    a_user: uuid.UUID
    b_user: uuid.UUID
    b_conversation: uuid.UUID
    counts: dict[uuid.UUID, dict[str, int]]


async def _populate(t: AsyncTenantStore) -> tuple[uuid.UUID, uuid.UUID]:
    """One row or more in every tenant table, through the public API."""
    await t.create_api_key("ci")
    await t.set_channel_config("discord", default_model="small")
    await t.upsert_knowledge("docs", "intro", "hello")
    user = await t.get_or_create_user_by_identity("discord", "1", username="ada")
    conv = await t.create_conversation(user.id, title="hi")
    await t.add_messages(conv.id, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    await t.store_memory("likes tea", user_id=user.id)
    await t.store_memory("Likes tea.", user_id=user.id)  # a near-duplicate: updates it, keeps a memory_versions row
    await t.record_tool_execution("search", conversation_id=conv.id)
    checkpoint = await t.create_checkpoint(conv.id, iteration=1, state={"step": 1})
    await t.record_interaction_event("approval", conversation_id=conv.id, checkpoint_id=checkpoint.id)
    await t.record_metric("latency_ms", 12.5, conversation_id=conv.id)
    await t.put_graph_checkpoint(
        "thread-1",
        "c1",
        checkpoint=b"{}",
        checkpoint_type="json",
        channel_versions={"messages": "1"},
        channel_values=[GraphChannelValue(channel="messages", version="1", type="json", blob=b"[]")],
    )
    await t.put_graph_writes(
        "thread-1", "c1", [GraphWrite(task_id="task", idx=0, channel="messages", type="json", blob=b"[]")]
    )
    await t.put_graph_item(("memories", "ada"), "tea", {"likes": "tea"}, content="likes tea")
    return user.id, conv.id


@pytest.fixture(scope="module")
async def two_tenants(pg_url: str, admin_dsn: str, astore: AsyncMnemoStore) -> AsyncIterator[TwoTenants]:
    a = await astore.create_tenant(f"rls-a-{uuid.uuid4().hex[:8]}")
    b = await astore.create_tenant(f"rls-b-{uuid.uuid4().hex[:8]}")
    a_user, _ = await _populate(astore.tenant(a.id))
    b_user, b_conv = await _populate(astore.tenant(b.id))
    counts: dict[uuid.UUID, dict[str, int]] = {}
    with connect(admin_dsn) as admin:
        # The system server has no pgvector, so the indexer stores no vectors: write one row (vector NULL) per
        # tenant by hand, so the embeddings table is covered like the others.
        for tid in (a.id, b.id):
            admin.execute(
                "INSERT INTO embeddings (tenant_id, item_kind, item_id, model, dimension, seq, embedded_at) "
                "VALUES (%s, 'memory', %s, 'test', 3, 1, now())",
                [tid, uuid.uuid4()],
            )
        admin.commit()
    with connect(admin_dsn) as admin:  # the superuser bypasses row-level security: the ground truth
        for tid in (a.id, b.id):
            counts[tid] = {
                table: admin.execute(f"SELECT count(*) FROM {table} WHERE {key} = %s", [tid]).fetchone()[0]
                for table, key in RLS_TABLES.items()
            }
    yield TwoTenants(a.id, b.id, a_user, b_user, b_conv, counts)
    await astore.delete_tenant(a.id)
    await astore.delete_tenant(b.id)


def visible(conn: psycopg.Connection[Any]) -> dict[str, list[uuid.UUID]]:
    """The tenant key of every row each table shows this connection."""
    return {
        table: [row[0] for row in conn.execute(f"SELECT {key} FROM {table}").fetchall()]
        for table, key in RLS_TABLES.items()
    }


def test_every_table_is_populated(two_tenants: TwoTenants) -> None:
    """The fixture writes to every table, so the checks below cover the whole schema."""
    for tid in (two_tenants.a, two_tenants.b):
        assert [table for table, n in two_tenants.counts[tid].items() if n == 0] == []


def test_app_role_sees_only_its_tenants_rows(app_conn: psycopg.Connection[Any], two_tenants: TwoTenants) -> None:
    for tid in (two_tenants.a, two_tenants.b):
        with app_conn.transaction():
            set_tenant(app_conn, tid)
            rows = visible(app_conn)
        assert {table: set(keys) for table, keys in rows.items()} == {table: {tid} for table in RLS_TABLES}
        assert {table: len(keys) for table, keys in rows.items()} == two_tenants.counts[tid]


def test_app_role_without_tenant_sees_nothing(app_conn: psycopg.Connection[Any], two_tenants: TwoTenants) -> None:
    with app_conn.transaction():
        assert visible(app_conn) == NOTHING
    with app_conn.transaction():
        set_local(app_conn, "mnemostore.tenant_id", "")
        assert visible(app_conn) == NOTHING
    with app_conn.transaction():
        set_tenant(app_conn, uuid.uuid4())  # a tenant nobody has
        assert visible(app_conn) == NOTHING


def test_tenant_scope_is_transaction_local(app_conn: psycopg.Connection[Any], two_tenants: TwoTenants) -> None:
    with app_conn.transaction():
        set_tenant(app_conn, two_tenants.a)
        assert visible(app_conn)["messages"]
    # The next transaction on the same connection (a pooled one, say) starts with no tenant.
    with app_conn.transaction():
        assert visible(app_conn) == NOTHING


def test_the_admin_setting_widens_nothing(app_conn: psycopg.Connection[Any], two_tenants: TwoTenants) -> None:
    """The setting that used to open every tenant (before migration 0008) is inert: the admin scope is a role."""
    with app_conn.transaction():
        set_local(app_conn, "mnemostore.admin", "on")
        assert visible(app_conn) == NOTHING
    with app_conn.transaction():
        set_tenant(app_conn, two_tenants.a)
        set_local(app_conn, "mnemostore.admin", "on")
        assert {table: set(keys) for table, keys in visible(app_conn).items()} == {
            t: {two_tenants.a} for t in RLS_TABLES
        }


def test_admin_role_sees_every_tenant(admin_dsn: str, two_tenants: TwoTenants) -> None:
    with connect(admin_dsn, role=ADMIN_ROLE) as conn, conn.transaction():
        rows = visible(conn)
    for table in RLS_TABLES:
        assert {two_tenants.a, two_tenants.b} <= set(rows[table]), table


async def test_store_admin_transactions_run_as_the_admin_role(pg_url: str, astore: AsyncMnemoStore) -> None:
    """Single-login mode (a superuser login, as here): the admin scope is SET LOCAL ROLE, undone at its end."""
    async with astore._db.transaction(None) as uow:
        assert (await uow.connection.execute(sa.text("SELECT current_user"))).scalar_one() == ADMIN_ROLE
    async with astore._db.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT current_user"))).scalar_one() == APP_ROLE


def test_insert_for_another_tenant_is_refused(app_conn: psycopg.Connection[Any], two_tenants: TwoTenants) -> None:
    a, b = two_tenants.a, two_tenants.b
    new_user = (
        "INSERT INTO users (tenant_id, id, preferences, metadata, created_at, updated_at) "
        "VALUES (%s, %s, '{}', '{}', now(), now())"
    )
    new_message = (
        "INSERT INTO messages (tenant_id, id, conversation_id, seq, role, content, prompt_tokens, "
        "completion_tokens, metadata, created_at) VALUES (%s, %s, %s, 999, 'user', 'x', 0, 0, '{}', now())"
    )
    for statement, params in (
        (new_user, [b, uuid.uuid4()]),
        (new_message, [b, uuid.uuid4(), two_tenants.b_conversation]),
    ):
        with refused(), app_conn.transaction():
            set_tenant(app_conn, a)
            app_conn.execute(statement, params)
        # With no tenant at all, nobody's rows can be written.
        with refused(), app_conn.transaction():
            app_conn.execute(statement, params)

    # The same insert for the scoped tenant goes through (then is rolled back): the policy, not a typo, refused.
    with app_conn.transaction(force_rollback=True):
        set_tenant(app_conn, a)
        app_conn.execute(new_user, [a, uuid.uuid4()])


def test_rows_cannot_be_moved_or_touched_across_tenants(
    app_conn: psycopg.Connection[Any], two_tenants: TwoTenants
) -> None:
    a, b = two_tenants.a, two_tenants.b
    # Citus refuses to change a row's distribution column before the policy gets to (either way: not moved).
    moved = (
        pytest.raises(psycopg.errors.FeatureNotSupported, match="modifying the partition value")
        if on_citus(app_conn)
        else refused()
    )
    with moved, app_conn.transaction():
        set_tenant(app_conn, a)
        user_id = uuid.uuid4()
        app_conn.execute(
            "INSERT INTO users (tenant_id, id, preferences, metadata, created_at, updated_at) "
            "VALUES (%s, %s, '{}', '{}', now(), now())",
            [a, user_id],
        )
        app_conn.execute("UPDATE users SET tenant_id = %s WHERE id = %s", [b, user_id])
    with app_conn.transaction():
        set_tenant(app_conn, a)
        assert app_conn.execute("UPDATE users SET display_name = 'mallory' WHERE tenant_id = %s", [b]).rowcount == 0
        assert app_conn.execute("DELETE FROM messages WHERE tenant_id = %s", [b]).rowcount == 0
        assert app_conn.execute("DELETE FROM tenants WHERE id = %s", [b]).rowcount == 0
    with app_conn.transaction():
        set_tenant(app_conn, b)
        assert visible(app_conn)["messages"] == [b] * two_tenants.counts[b]["messages"]
        row = app_conn.execute("SELECT display_name FROM users WHERE id = %s", [two_tenants.b_user]).fetchone()
        assert row == ("ada",)


def test_app_role_cannot_bypass_row_level_security(admin_dsn: str, two_tenants: TwoTenants) -> None:
    with connect(admin_dsn) as admin:
        # On Citus they may log in (migration 0013): Citus connects to the workers as the role a statement runs as.
        citus = on_citus(admin)
        for role in (APP_ROLE, ADMIN_ROLE):
            row = admin.execute(
                "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", [role]
            ).fetchone()
            assert row == (False, False, citus), role
        # Neither role is a member of the other: the application role cannot SET ROLE to the admin one.
        member = admin.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [APP_ROLE, ADMIN_ROLE]).fetchone()
        assert member == (False,)


async def test_store_connections_run_as_the_app_role(pg_url: str, astore: AsyncMnemoStore) -> None:
    async with astore._db.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT current_user, session_user, rolsuper OR rolbypassrls "
                    "FROM pg_roles WHERE rolname = current_user"
                )
            )
        ).one()
    assert tuple(row) == (APP_ROLE, make_url(pg_url).username, False)


async def test_store_transactions_are_confined_by_the_database(
    astore: AsyncMnemoStore, two_tenants: TwoTenants
) -> None:
    """Inside the store's tenant transaction, SQL without any tenant filter still sees one tenant only."""
    for tid in (two_tenants.a, two_tenants.b):
        async with astore._db.transaction(tid) as uow:
            conn = uow.connection
            assert (await conn.execute(sa.text("SELECT current_user"))).scalar_one() == APP_ROLE
            for table, key in RLS_TABLES.items():
                keys = (await conn.execute(sa.text(f"SELECT {key} FROM {table}"))).scalars().all()
                assert set(keys) == {tid}, table
                assert len(keys) == two_tenants.counts[tid][table], table


async def test_store_pool_does_not_carry_a_tenant_or_a_role_over(pg_url: str, two_tenants: TwoTenants) -> None:
    async with AsyncMnemoStore(pg_url, pool_size=1, max_overflow=0) as store:
        async with store._db.transaction(two_tenants.a) as uow:
            pid = (await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            assert (await uow.connection.execute(sa.text("SELECT count(*) FROM messages"))).scalar_one() > 0
        async with store._db.transaction(None) as uow:  # then the admin role, on the same connection
            assert (await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one() == pid
        async with store._db.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.text(
                        "SELECT pg_backend_pid(), current_setting('mnemostore.tenant_id', true), "
                        "current_user, (SELECT count(*) FROM messages)"
                    )
                )
            ).one()
    assert row[0] == pid  # the very connection the tenant transaction used
    assert row[1] in ("", None)
    assert row[2] == APP_ROLE
    assert row[3] == 0


# -- (b) query plans ------------------------------------------------------------------------------------------------

BIG_DATA_SQL = """
INSERT INTO users (tenant_id, id, display_name, preferences, metadata, created_at, updated_at)
SELECT t.id, gen_random_uuid(), 'u' || i, '{}', '{}', now(), now()
FROM generate_series(1, 2000) AS i, (VALUES (%(c)s::uuid), (%(d)s::uuid)) AS t(id);

INSERT INTO user_identities (tenant_id, user_id, channel, channel_user_id, created_at)
SELECT tenant_id, id, 'discord', display_name, now() FROM users WHERE tenant_id IN (%(c)s, %(d)s);

-- Three conversations per user, a fifth of them active; plus one heavy user with 600.
INSERT INTO conversations (tenant_id, id, user_id, status, metadata, started_at, last_activity_at,
                           message_count, total_tokens, content_bytes, last_seq)
SELECT u.tenant_id, gen_random_uuid(), u.id, CASE WHEN n %% 5 = 0 THEN 'active' ELSE 'archived' END, '{}',
       now() - interval '90 days', now() - (n * interval '37 minutes'), 0, 0, 0, 0
FROM users u, generate_series(1, 3) AS n
WHERE u.tenant_id IN (%(c)s, %(d)s);
INSERT INTO conversations (tenant_id, id, user_id, status, metadata, started_at, last_activity_at,
                           message_count, total_tokens, content_bytes, last_seq)
SELECT u.tenant_id, gen_random_uuid(), u.id, CASE WHEN n %% 5 = 0 THEN 'active' ELSE 'archived' END, '{}',
       now() - interval '90 days', now() - (n * interval '11 minutes'), 0, 0, 0, 0
FROM users u, generate_series(1, 600) AS n
WHERE u.tenant_id = %(c)s AND u.display_name = 'u1';

-- Four messages in every conversation, and one long conversation of 400.
INSERT INTO messages (tenant_id, id, conversation_id, seq, role, content, prompt_tokens, completion_tokens,
                      metadata, created_at)
SELECT c.tenant_id, gen_random_uuid(), c.id, s, 'user', 'message ' || s, 1, 2, '{}', now()
FROM conversations c, generate_series(1, 4) AS s
WHERE c.tenant_id IN (%(c)s, %(d)s);
INSERT INTO messages (tenant_id, id, conversation_id, seq, role, content, prompt_tokens, completion_tokens,
                      metadata, created_at)
SELECT c.tenant_id, gen_random_uuid(), c.id, s, 'assistant', 'message ' || s, 1, 2, '{}', now()
FROM (SELECT * FROM conversations WHERE tenant_id = %(c)s ORDER BY id LIMIT 1) AS c, generate_series(5, 400) AS s;

-- Keep the conversations' counters true to their rows (the store's usage is recounted afterwards).
UPDATE conversations AS c
SET message_count = m.n, last_seq = m.n, total_tokens = 3 * m.n, content_bytes = m.bytes
FROM (SELECT tenant_id, conversation_id, count(*) AS n, sum(octet_length(content)) AS bytes
      FROM messages WHERE tenant_id IN (%(c)s, %(d)s) GROUP BY 1, 2) AS m
WHERE c.tenant_id = m.tenant_id AND c.id = m.conversation_id;

-- Twenty sources of two hundred chunks each, per tenant.
INSERT INTO knowledge_chunks (tenant_id, id, source, external_id, content, content_hash, content_bytes,
                              metadata, created_at, updated_at)
SELECT t.id, gen_random_uuid(), 'source-' || (i %% 20), 'chunk-' || lpad(i::text, 5, '0'), 'text ' || i,
       md5(i::text), octet_length('text ' || i), '{}', now(), now()
FROM generate_series(1, 4000) AS i, (VALUES (%(c)s::uuid), (%(d)s::uuid)) AS t(id);
"""


@dataclass
class BigTenant:
    id: uuid.UUID
    long_conversation: uuid.UUID
    heavy_user: uuid.UUID
    identity: str
    source: str


@pytest.fixture(scope="module")
async def big_tenant(pg_url: str, admin_dsn: str, astore: AsyncMnemoStore) -> AsyncIterator[BigTenant]:
    """Two tenants with tens of thousands of rows, written as admin in bulk, then ANALYZEd."""
    c = await astore.create_tenant(f"plans-c-{uuid.uuid4().hex[:8]}")
    d = await astore.create_tenant(f"plans-d-{uuid.uuid4().hex[:8]}")
    with connect(admin_dsn) as admin:
        with admin.transaction():
            # Several statements in one call: bind on the client (server-side binding takes one statement).
            psycopg.ClientCursor(admin).execute(BIG_DATA_SQL, {"c": c.id, "d": d.id})
        long_conversation = admin.execute(
            "SELECT id FROM conversations WHERE tenant_id = %s ORDER BY message_count DESC LIMIT 1", [c.id]
        ).fetchone()[0]
        heavy_user = admin.execute(
            "SELECT id FROM users WHERE tenant_id = %s AND display_name = 'u1'", [c.id]
        ).fetchone()[0]
        admin.execute("ANALYZE users, user_identities, conversations, messages, knowledge_chunks")
    for tid in (c.id, d.id):
        usage = await astore.recount_tenant_usage(tid)
        assert usage.messages > 10_000
    yield BigTenant(c.id, long_conversation, heavy_user, "u1234", "source-7")
    await astore.delete_tenant(c.id)
    await astore.delete_tenant(d.id)


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def explain(
    store: AsyncMnemoStore, tenant_id: uuid.UUID, statement: str, parameters: Any
) -> list[dict[str, Any]]:
    """The plan of ``statement`` as the store would run it: as mnemostore_app, scoped to ``tenant_id``."""
    async with store._db.transaction(tenant_id) as uow:
        result = await uow.connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
        document = result.scalar_one()
    return list(plan_nodes(document[0]["Plan"]))


def describe(nodes: list[dict[str, Any]]) -> str:
    return " / ".join(f"{n['Node Type']} {n.get('Relation Name', '')} {n.get('Index Name', '')}".strip() for n in nodes)


async def assert_uses_index(
    store: AsyncMnemoStore,
    tenant_id: uuid.UUID,
    call: Callable[[], Awaitable[object]],
    *,
    tables: tuple[str, ...],
    index: str,
) -> None:
    """Every query ``call`` sends about ``tables`` walks ``index``, and none scans those tables sequentially."""
    with capture(store) as sent:
        await call()
    queries = [
        (statement, parameters)
        for statement, parameters in sent
        if statement.lstrip().upper().startswith("SELECT") and any(f"FROM {t}" in statement for t in tables)
    ]
    assert queries, f"the call sent no query on {tables}: {[s for s, _ in sent]}"
    for statement, parameters in queries:
        nodes = await explain(store, tenant_id, statement, parameters)
        plan = describe(nodes)
        assert index in {n.get("Index Name") for n in nodes}, plan
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in tables], plan


async def test_big_tenant_is_big(admin_dsn: str, big_tenant: BigTenant) -> None:
    """Sizes at which a sequential scan would be a real cost, so the planner's choice of index means something."""
    with connect(admin_dsn) as admin:
        sizes = dict(
            admin.execute(
                "SELECT relname, reltuples::bigint FROM pg_class WHERE relname = ANY(%s)",
                [["messages", "conversations", "users", "user_identities", "knowledge_chunks"]],
            ).fetchall()
        )
    assert sizes["messages"] > 40_000
    assert sizes["conversations"] > 10_000
    assert min(sizes["users"], sizes["user_identities"], sizes["knowledge_chunks"]) >= 4_000


def routine_plans(admin_dsn: str, statement: str, parameters: Sequence[Any], *, calls: int = 7) -> list[dict[str, Any]]:
    """The plans of the statements a PL/pgSQL routine runs, as ``mnemostore_app`` runs it, on its last call.

    auto_explain reports nested statements to the client as notices. PL/pgSQL caches its statements' plans and
    switches to a generic one after five calls: the last of ``calls`` is the plan a long-lived connection keeps.
    """
    notices: list[str] = []
    with connect(admin_dsn) as conn:
        conn.add_notice_handler(lambda diagnostic: notices.append(diagnostic.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        for name, value in (("log_min_duration", "0"), ("log_nested_statements", "on"), ("log_format", "json")):
            conn.execute(f"SET auto_explain.{name} = '{value}'")
        conn.execute("SET auto_explain.log_level = 'notice'")
        conn.execute(f'SET ROLE "{APP_ROLE}"')
        for _ in range(calls):
            notices.clear()
            conn.execute(statement, parameters).fetchall()
    documents = [json.loads(text[text.index("{") :]) for text in notices if '"Plan"' in text]
    return [document["Plan"] for document in documents]


async def test_history_reads_go_through_the_one_call_routine(astore: AsyncMnemoStore, big_tenant: BigTenant) -> None:
    """No statement of a history page reaches the database through SQLAlchemy: the routine does it all."""
    t = astore.tenant(big_tenant.id)
    with capture(astore) as sent:
        newest = await t.get_conversation_history(big_tenant.long_conversation, limit=50)
        await t.get_conversation_history(big_tenant.long_conversation, limit=50, before=newest.before)
    assert [statement for statement, _ in sent if "messages" in statement] == []


@pytest.mark.parametrize("direction, seq", [("before", None), ("before", 200), ("after", 100)])
async def test_plan_history_pages_walk_the_sequence_index(
    admin_dsn: str, big_tenant: BigTenant, direction: str, seq: int | None
) -> None:
    """Every page of the history routine (newest, older, newer) walks the (tenant, conversation, seq) index."""
    plans = routine_plans(
        admin_dsn,
        "SELECT * FROM mnemostore_history(%s, %s, %s, %s, %s)",
        [big_tenant.id, big_tenant.long_conversation, 51, direction, seq],
    )
    history_plans = [p for p in plans if "messages" in {n.get("Relation Name") for n in plan_nodes(p)}]
    assert history_plans, plans
    for plan in history_plans:
        nodes = list(plan_nodes(plan))
        assert "uq_messages_tenant_id_conversation_id_seq" in {n.get("Index Name") for n in nodes}, describe(nodes)
        assert not [n for n in nodes if n["Node Type"] in ("Seq Scan", "Sort")], describe(nodes)


@pytest.mark.parametrize("status", ["active", "archived", None])
async def test_plan_conversations_of_a_user(astore: AsyncMnemoStore, big_tenant: BigTenant, status: str | None) -> None:
    t = astore.tenant(big_tenant.id)

    async def list_two_pages() -> None:
        first = await t.list_conversations(big_tenant.heavy_user, status=status, limit=20)
        assert first.next_cursor is not None
        await t.list_conversations(big_tenant.heavy_user, status=status, limit=20, cursor=first.next_cursor)

    await assert_uses_index(
        astore,
        big_tenant.id,
        list_two_pages,
        tables=("conversations",),
        index="ix_conversations_tenant_id_user_id_status_last_activity_at_id",
    )


async def test_plan_active_conversations_of_a_tenant(astore: AsyncMnemoStore, big_tenant: BigTenant) -> None:
    t = astore.tenant(big_tenant.id)

    async def list_two_pages() -> None:
        first = await t.list_active_conversations(limit=20)
        assert len(first.items) == 20 and first.next_cursor is not None
        assert all(c.status == "active" for c in first.items)
        await t.list_active_conversations(limit=20, cursor=first.next_cursor)

    await assert_uses_index(
        astore, big_tenant.id, list_two_pages, tables=("conversations",), index="ix_conversations_active"
    )


async def test_plan_user_by_channel_identity(astore: AsyncMnemoStore, big_tenant: BigTenant) -> None:
    t = astore.tenant(big_tenant.id)

    async def look_up() -> None:
        assert await t.get_user_by_identity("discord", big_tenant.identity) is not None

    await assert_uses_index(
        astore, big_tenant.id, look_up, tables=("users", "user_identities"), index="pk_user_identities"
    )


async def test_plan_knowledge_by_source(astore: AsyncMnemoStore, big_tenant: BigTenant) -> None:
    t = astore.tenant(big_tenant.id)

    async def list_two_pages() -> None:
        first = await t.list_knowledge(big_tenant.source, limit=50)
        assert len(first.items) == 50 and first.next_cursor is not None
        await t.list_knowledge(big_tenant.source, limit=50, cursor=first.next_cursor)

    await assert_uses_index(
        astore,
        big_tenant.id,
        list_two_pages,
        tables=("knowledge_chunks",),
        index="uq_knowledge_chunks_tenant_id_source_external_id",
    )
