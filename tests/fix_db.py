"""Database fixtures: every store test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from ``--pg-dsn`` or ``MNEMOSTORE_TEST_PG_DSN`` (default: the local server at 127.0.0.1:5432).
Each test session gets its own freshly migrated database, dropped at the end; migration tests get an empty
database each. When the server is unreachable the postgres cases are skipped, unless ``--require-postgres``
(CI sets it) turns that into a failure.

Tests are isolated by tenant: each one gets a new tenant, so they never see each other's rows.

A third backend, ``citus``, runs a named subset of the modules again on a Citus cluster (a coordinator and two
workers, tests/fix_citus.py, which names the modules and the reason for each test left out there); its
databases are migrated to head like the others, which distributes their tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from mnemostore import AsyncMnemoStore, AsyncTenantStore, MnemoStore, Settings, TenantStore
from mnemostore.ops import migrate
from tests.fix_citus import CitusCluster

BACKENDS = ["sqlite", "postgres", "citus"]
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# The pool of the stores whose tests race writers against each other (the suite's default is 1 + 3, see
# tests/conftest.py): enough connections that the races happen in the database, not in the pool's queue.
RACE_POOL: dict[str, int] = {"pool_size": 8, "max_overflow": 0}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pg-dsn", default=os.environ.get("MNEMOSTORE_TEST_PG_DSN", DEFAULT_PG_DSN))
    parser.addoption("--require-postgres", action="store_true", help="fail, don't skip, without PostgreSQL")


class PostgresServer:
    """Creates and drops scratch databases on the test server."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def create_database(self) -> str:
        name = f"mnemostore_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(self.dsn.replace("postgresql://", "postgresql+psycopg://", 1)).set(database=name)
        return url.render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> PostgresServer:
    dsn = request.config.getoption("--pg-dsn")
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        if request.config.getoption("--require-postgres"):
            pytest.fail(f"PostgreSQL at {dsn} is required but unreachable: {error}")
        pytest.skip(f"PostgreSQL at {dsn} unreachable: {error}")
    return PostgresServer(dsn)


def _empty_database(request: pytest.FixtureRequest, backend: str, tmp_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / f'mnemostore-{uuid.uuid4().hex[:8]}.db'}"
        return
    server: PostgresServer | CitusCluster = request.getfixturevalue(
        "citus_cluster" if backend == "citus" else "pg_server"
    )
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database migrated to head, shared by the session's tests of one backend."""
    for url in _empty_database(request, backend, tmp_path_factory.mktemp(backend)):
        migrate.upgrade(Settings(database_url=url))
        yield url


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """A brand-new database with no schema (for migration tests)."""
    yield from _empty_database(request, backend, tmp_path)


@pytest.fixture(scope="session")
async def astore(database_url: str) -> AsyncIterator[AsyncMnemoStore]:
    store = AsyncMnemoStore(database_url)
    yield store
    await store.close()


@pytest.fixture
async def atenant(astore: AsyncMnemoStore) -> AsyncTenantStore:
    tenant = await astore.create_tenant(f"tenant-{uuid.uuid4().hex[:12]}")
    return astore.tenant(tenant.id)


@pytest.fixture(scope="session")
def store(database_url: str) -> Iterator[MnemoStore]:
    sync_store = MnemoStore(database_url)
    yield sync_store
    sync_store.close()


@pytest.fixture
def tenant(store: MnemoStore) -> TenantStore:
    created = store.create_tenant(f"tenant-{uuid.uuid4().hex[:12]}")
    return store.tenant(created.id)
