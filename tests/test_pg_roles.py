"""PostgreSQL only: the recommended database roles (README, "PostgreSQL roles"), as real logins on the server.

* ``api``: LOGIN, a member of ``mnemostore_app`` only, for ``MNEMOSTORE_DATABASE_URL``;
* ``ops``: LOGIN, a member of ``mnemostore_admin``, for ``MNEMOSTORE_ADMIN_DATABASE_URL``.

Raw connections check what SQL run under the API login (say, injected) can reach: no setting, ``RESET ROLE`` or
``SET ROLE`` widens it past the tenant it binds. Then stores on those logins check that everything works with both
URLs, and that with the API login alone tenant work goes on and admin work is refused with advice. The logins get
unique names and are dropped afterwards (roles are the server's, not the test database's).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from mnemostore import AdminAccessUnavailable, AsyncMnemoStore, ConfigurationError, MnemoStore, Settings
from mnemostore.api import create_app
from mnemostore.store.tables import TENANT_TABLES
from tests.fix_api import admin_headers, api_settings

pytestmark = pytest.mark.postgres_only

APP_ROLE = "mnemostore_app"
ADMIN_ROLE = "mnemostore_admin"
RLS_TABLES = {"tenants": "id", **dict.fromkeys(TENANT_TABLES, "tenant_id")}
# Tables the fixture writes for both tenants (the graph and search tables are covered by test_isolation_postgres).
CHECKED = ("tenants", "api_keys", "users", "conversations", "messages", "memories", "index_jobs", "tenant_usage")


@dataclass
class Logins:
    api: str  # the API login's role name
    ops: str
    api_url: str
    ops_url: str
    api_dsn: str
    ops_dsn: str


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def logins(backend: str, database_url: str) -> Iterator[Logins]:
    if backend != "postgres":
        pytest.skip("database roles are PostgreSQL's")
    suffix = uuid.uuid4().hex[:8]
    api, ops = f"mnemostore_api_{suffix}", f"mnemostore_ops_{suffix}"
    owner = _dsn(database_url)
    with psycopg.connect(owner, autocommit=True) as conn:
        # The README's SQL (without passwords: the test server trusts local logins).
        conn.execute(f'CREATE ROLE "{api}" LOGIN')
        conn.execute(f'GRANT "{APP_ROLE}" TO "{api}"')
        conn.execute(f'CREATE ROLE "{ops}" LOGIN')
        conn.execute(f'GRANT "{ADMIN_ROLE}" TO "{ops}"')
    url = make_url(database_url)
    api_url = url.set(username=api, password=None).render_as_string(hide_password=False)
    ops_url = url.set(username=ops, password=None).render_as_string(hide_password=False)
    try:
        yield Logins(api, ops, api_url, ops_url, _dsn(api_url), _dsn(ops_url))
    finally:
        with psycopg.connect(owner, autocommit=True) as conn:
            for role in (api, ops):
                # Any session still open on the login would keep DROP ROLE from succeeding.
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@dataclass
class Tenants:
    a: uuid.UUID
    b: uuid.UUID


@pytest.fixture(scope="module")
async def tenants(logins: Logins, astore: AsyncMnemoStore) -> AsyncIterator[Tenants]:
    """Two tenants with a user, a conversation, messages, a memory and an API key each."""
    ids = []
    for name in ("a", "b"):
        tenant = await astore.create_tenant(f"roles-{name}-{uuid.uuid4().hex[:8]}")
        t = astore.tenant(tenant.id)
        await t.create_api_key("ci")
        user = await t.get_or_create_user_by_identity("discord", "1", username="ada")
        conv = await t.create_conversation(user.id)
        await t.add_messages(conv.id, [{"role": "user", "content": f"secret of {name}"}])
        await t.store_memory(f"{name} likes tea", user_id=user.id)
        ids.append(tenant.id)
    yield Tenants(*ids)
    for tid in ids:
        await astore.delete_tenant(tid)


@contextmanager
def connect(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def visible(conn: psycopg.Connection[Any], tables: tuple[str, ...] = CHECKED) -> dict[str, set[uuid.UUID]]:
    """The tenants whose rows each table shows this connection."""
    return {table: {row[0] for row in conn.execute(f"SELECT {RLS_TABLES[table]} FROM {table}")} for table in tables}


def only(*tenant_ids: uuid.UUID) -> dict[str, set[uuid.UUID]]:
    return {table: set(tenant_ids) for table in CHECKED}


def bind(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    conn.execute("SELECT set_config('mnemostore.tenant_id', %s, true)", [str(tenant_id)])


# -- what SQL under the API login can reach --------------------------------------------------------------------------


def test_the_admin_setting_widens_nothing(logins: Logins, tenants: Tenants) -> None:
    """The old switch: ``mnemostore.admin`` on used to show every tenant to any role. Now it is just a string."""
    with connect(logins.api_dsn) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('mnemostore.admin', 'on', true)")
            assert visible(conn) == only()
        with conn.transaction():
            bind(conn, tenants.a)
            conn.execute("SELECT set_config('mnemostore.admin', 'on', true)")
            assert visible(conn) == only(tenants.a)
        # Session-wide, and as the application role itself: the same.
        conn.execute("SELECT set_config('mnemostore.admin', 'on', false)")
        conn.execute(f'SET ROLE "{APP_ROLE}"')
        with conn.transaction():
            bind(conn, tenants.b)
            assert visible(conn) == only(tenants.b)


def test_reset_role_stays_bound_to_the_tenant(logins: Logins, tenants: Tenants) -> None:
    """``RESET ROLE`` (or ``SET ROLE NONE``) returns to the login, which inherits the tenant policy and no other."""
    with connect(logins.api_dsn) as conn:
        conn.execute(f'SET ROLE "{APP_ROLE}"')
        for reset in ("RESET ROLE", "SET ROLE NONE", "SET SESSION AUTHORIZATION DEFAULT"):
            conn.execute(reset)
            assert conn.execute("SELECT current_user").fetchone() == (logins.api,)
            with conn.transaction():
                assert visible(conn) == only()
            with conn.transaction():
                bind(conn, tenants.a)
                conn.execute("SELECT set_config('mnemostore.admin', 'on', true)")
                assert visible(conn) == only(tenants.a)


@pytest.mark.parametrize(
    "statement",
    [
        f'SET ROLE "{ADMIN_ROLE}"',
        f'SET LOCAL ROLE "{ADMIN_ROLE}"',
        f"SELECT set_config('role', '{ADMIN_ROLE}', false)",
        f'SET SESSION AUTHORIZATION "{ADMIN_ROLE}"',
        "SET ROLE postgres",
        "SET row_security = off",
    ],
)
def test_the_api_login_cannot_take_a_wider_role(logins: Logins, tenants: Tenants, statement: str) -> None:
    with connect(logins.api_dsn) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(statement)
            # ``row_security = off`` is accepted, and then a query that policies would filter is an error.
            visible(conn)
        assert conn.execute("SELECT current_user").fetchone() == (logins.api,)


def test_the_api_login_cannot_change_policies_or_grant_itself(logins: Logins, tenants: Tenants) -> None:
    with connect(logins.api_dsn) as conn:
        for statement in (
            "DROP POLICY admin_access ON messages",
            "ALTER TABLE messages DISABLE ROW LEVEL SECURITY",
            "CREATE POLICY everything ON messages USING (true)",
            f'GRANT "{ADMIN_ROLE}" TO "{logins.api}"',
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_ops_login_sees_every_tenant(logins: Logins, tenants: Tenants) -> None:
    with connect(logins.ops_dsn) as conn, conn.transaction():
        rows = visible(conn)
    for table in CHECKED:
        assert {tenants.a, tenants.b} <= rows[table], table


# -- stores on the recommended logins --------------------------------------------------------------------------------


@pytest.fixture
async def split_store(logins: Logins) -> AsyncIterator[AsyncMnemoStore]:
    """The hardened deployment: tenant work on the API login, admin work on the ops login."""
    async with AsyncMnemoStore(logins.api_url, admin_database_url=logins.ops_url, pool_size=1) as store:
        yield store


@pytest.fixture
async def api_only_store(logins: Logins) -> AsyncIterator[AsyncMnemoStore]:
    async with AsyncMnemoStore(logins.api_url, pool_size=1) as store:
        yield store


async def test_split_store_runs_each_scope_as_its_role(split_store: AsyncMnemoStore, logins: Logins) -> None:
    db = split_store._db
    async with db.transaction(uuid.uuid4()) as uow:
        row = (await uow.connection.execute(sa.text("SELECT current_user, session_user"))).one()
    assert tuple(row) == (logins.api, logins.api)
    async with db.transaction(None) as uow:
        row = (await uow.connection.execute(sa.text("SELECT current_user, session_user"))).one()
    assert tuple(row) == (ADMIN_ROLE, logins.ops)
    assert db.admin_engine is not None and db.admin_engine.pool.size() == 1


async def test_split_store_end_to_end(split_store: AsyncMnemoStore, tenants: Tenants) -> None:
    store = split_store
    tenant = await store.create_tenant(f"roles-e2e-{uuid.uuid4().hex[:8]}")
    try:
        assert tenant.id in {t.id for t in (await store.list_tenants(limit=1000)).items}
        t = store.tenant(tenant.id)
        _key, secret = await t.create_api_key("e2e")
        found = await store.authenticate(secret)
        assert found is not None and found.tenant_id == tenant.id
        assert (await store.get_tenant(tenant.id)) == tenant
        user = await t.get_or_create_user_by_identity("discord", "42", username="grace")
        conv = await t.create_conversation(user.id)
        await t.add_messages(conv.id, [{"role": "user", "content": "the kettle whistles"}])
        history = await t.get_conversation_history(conv.id)
        assert [m.content for m in history.messages] == ["the kettle whistles"]
        # The indexer claims jobs across tenants (admin scope), then embeds each in its tenant's scope.
        assert (await store.wait_for_indexing(timeout_seconds=60)).pending == 0
        mine = await t.indexing_status()  # the store-wide status holds other tests' deliberate failures
        assert (mine.pending, mine.failed, mine.done) == (0, 0, 1)
        results = await t.search("kettle", mode="fulltext")
        assert [r.content for r in results] == ["the kettle whistles"]
        # Nothing of another tenant leaks into this one's search.
        assert await t.search("secret", mode="fulltext") == []
        report = await store.run_maintenance(dry_run=True)
        assert tenant.id in {r.tenant_id for r in report.tenants}
        health = await store.health()
        assert {c.name: c.status.value for c in health.checks}["indexing"] != "skip"
    finally:
        await store.delete_tenant(tenant.id)
    assert await store.get_tenant(tenant.id) is None


def test_sync_split_store(logins: Logins) -> None:
    """The sync twin on the same two logins."""
    with MnemoStore(logins.api_url, admin_database_url=logins.ops_url, pool_size=1) as store:
        tenant = store.create_tenant(f"roles-sync-{uuid.uuid4().hex[:8]}")
        t = store.tenant(tenant.id)
        conv = t.create_conversation(t.create_user().id)
        t.add_messages(conv.id, [{"role": "user", "content": "in sync"}])
        assert [m.content for m in t.get_conversation_history(conv.id).messages] == ["in sync"]
        store.delete_tenant(tenant.id)
    with MnemoStore(logins.api_url, pool_size=1) as store, pytest.raises(AdminAccessUnavailable):
        store.list_tenants()


async def test_api_login_alone_does_tenant_work_and_refuses_admin_work(
    api_only_store: AsyncMnemoStore, astore: AsyncMnemoStore, tenants: Tenants
) -> None:
    store = api_only_store
    _key, secret = await astore.tenant(tenants.a).create_api_key("api-only")
    found = await store.authenticate(secret)
    assert found is not None and found.tenant_id == tenants.a
    assert (await store.get_tenant(tenants.a)) is not None
    t = store.tenant(tenants.a)
    user = await t.get_or_create_user_by_identity("discord", "7")
    conv = await t.create_conversation(user.id)
    await t.add_messages(conv.id, [{"role": "user", "content": "tenant work goes on"}])
    assert [m.content for m in (await t.get_conversation_history(conv.id)).messages] == ["tenant work goes on"]

    for admin_work in (
        lambda: store.create_tenant(f"refused-{uuid.uuid4().hex[:8]}"),
        lambda: store.list_tenants(),
        lambda: store.indexing_status(),
        lambda: store.delete_tenant(tenants.b),
    ):
        with pytest.raises(AdminAccessUnavailable, match="MNEMOSTORE_ADMIN_DATABASE_URL") as raised:
            await admin_work()
        assert ADMIN_ROLE in str(raised.value)
    assert await astore.get_tenant(tenants.b) is not None
    health = {c.name: c for c in (await store.health()).checks}
    assert health["indexing"].status.value == "skip" and "admin role" in health["indexing"].summary


async def test_http_service_on_the_api_login(logins: Logins, tenants: Tenants, astore: AsyncMnemoStore) -> None:
    """Tenant requests need only the API login (the key and the tenant are read in the tenant's scope); the admin
    endpoints need the admin URL (without it: a server-side 500, the advice in the server's log)."""
    _key, secret = await astore.tenant(tenants.a).create_api_key("http")
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(api_settings(logins.api_url, pool_size=1))) as client:
        users = client.get("/v1/users", headers=headers)
        assert users.status_code == 200, users.text
        assert client.get("/v1/tenants", headers=admin_headers()).status_code == 500
    split = api_settings(logins.api_url, pool_size=1, admin_database_url=logins.ops_url)
    with TestClient(create_app(split)) as client:
        assert client.get("/v1/users", headers=headers).status_code == 200
        listed = client.get("/v1/tenants", headers=admin_headers(), params={"limit": 100})
        assert listed.status_code == 200, listed.text


def test_admin_url_needs_postgres(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SQLite"):
        Settings(database_url=f"sqlite:///{tmp_path}/x.db", admin_database_url="postgresql://ops@localhost/db")
