"""``store.health()`` and ``mnemostore health``, on SQLite and PostgreSQL: what each check reports, the timeouts,
the exit status and the JSON document."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnemostore import AsyncMnemoStore, HealthReport, HealthStatus, MnemoStore, Settings
from mnemostore.cli.main import app
from mnemostore.ops import migrate

CHECKS = ["database", "schema", "pgvector", "redis", "embedder", "indexing", "disk", "encryption"]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts connections and never answers: a server that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def statuses(report: HealthReport) -> dict[str, str]:
    return {c.name: c.status.value for c in report.checks}


async def test_healthy_store(astore: AsyncMnemoStore, backend: str) -> None:
    report = await astore.health()
    assert [c.name for c in report.checks] == CHECKS
    assert report.healthy and report.failing == []
    found = statuses(report)
    assert found["database"] == found["schema"] == "ok"
    # The tests run with the hashing embedder (tests/conftest.py): a warning, since it is not semantic.
    assert found["embedder"] == "warn" and "not semantic" in report.check("embedder").summary
    assert found["indexing"] in ("ok", "warn") and "pending" in report.check("indexing").summary
    # The system PostgreSQL has no pgvector: semantic search is off, which is a warning, not a failure.
    assert found["pgvector"] == ("skip" if backend == "sqlite" else "warn")
    assert report.check("database").latency_ms is not None and report.check("database").latency_ms >= 0
    assert report.check("schema").details == {"current": migrate.head_revision(), "head": migrate.head_revision()}
    assert found["disk"] == ("ok" if backend == "sqlite" else "skip")
    if backend == "sqlite":
        assert report.check("disk").details["free_bytes"] > 0
    # No keys configured: sensitive fields are in clear, which is a warning, not a failure.
    assert found["encryption"] == "warn" and report.status is HealthStatus.WARN
    assert "MNEMOSTORE_ENCRYPTION_KEYS" in (report.check("encryption").action or "")
    document = json.loads(json.dumps(report.to_dict()))
    assert document["healthy"] is True and [c["name"] for c in document["checks"]] == CHECKS


def test_sync_health_matches(store: MnemoStore) -> None:
    report = store.health()
    assert [c.name for c in report.checks] == CHECKS and report.healthy


async def test_unmigrated_database_fails_the_schema_check(empty_database_url: str) -> None:
    async with AsyncMnemoStore(empty_database_url) as store:
        report = await store.health()
    assert not report.healthy
    assert [c.name for c in report.failing] == ["schema"]
    assert "mnemostore init" in (report.check("schema").action or "")


async def test_schema_behind_and_unknown(empty_database_url: str) -> None:
    migrate.upgrade(Settings(database_url=empty_database_url), "0001")
    async with AsyncMnemoStore(empty_database_url) as store:
        behind = (await store.health()).check("schema")
    assert behind.status is HealthStatus.FAIL
    assert behind.summary == f"at 0001, this code needs {migrate.head_revision()}"
    assert behind.action == "run `mnemostore db upgrade`"


async def test_unreachable_database(tmp_path: Path) -> None:
    async with AsyncMnemoStore(f"sqlite:///{tmp_path / 'missing' / 'x.db'}") as store:
        report = await store.health()
    assert statuses(report)["database"] == "fail" and statuses(report)["schema"] == "skip"
    assert "cannot use the SQLite file" in (report.check("database").action or "")  # a file, not a server
    assert statuses(report)["disk"] == "fail"


@pytest.mark.parametrize("twin", ["async", "sync"])
async def test_a_hung_server_costs_one_timeout(silent_port: int, twin: str) -> None:
    """The health check gives up at its own timeout instead of waiting for the driver's connect timeout.

    The summary shows which of the two ended the check (a check that ran to the driver's timeout would report
    the connection error instead). The one real-time bound left is against ``connect_timeout`` itself, 40 times
    the health timeout: a real socket deadline cannot run on an injected clock, and nothing but a health check or
    a close that waited for the hung connection can come near it.
    """
    url = f"postgresql://postgres@127.0.0.1:{silent_port}/mnemostore"
    connect_timeout = 20
    started = time.monotonic()
    if twin == "async":
        async with AsyncMnemoStore(url, connect_timeout=connect_timeout) as astore:
            report = await astore.health(timeout_seconds=0.5)
    else:
        with MnemoStore(url, connect_timeout=connect_timeout) as store:
            report = store.health(timeout_seconds=0.5)
    elapsed = time.monotonic() - started
    assert report.check("database").summary == "no answer within 0.5 s"
    assert [c.name for c in report.failing] == ["database"]  # schema and pgvector: not checked, not failed
    assert statuses(report)["schema"] == "skip"
    assert elapsed < connect_timeout, elapsed  # neither the check nor the close waited for the hung connect


async def test_low_disk_space_warns(database_url: str, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("disk space is measured for SQLite files")
    async with AsyncMnemoStore(database_url, disk_free_warn_bytes=2**62) as store:
        report = await store.health()
    disk = report.check("disk")
    assert disk.status is HealthStatus.WARN and report.healthy
    assert "MNEMOSTORE_DISK_FREE_WARN_BYTES" in (disk.action or "")


async def test_encryption_configured_is_ok(database_url: str) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    async with AsyncMnemoStore(database_url, encryption_keys=[f"main:{key}"], blind_index_key=key) as store:
        check = (await store.health()).check("encryption")
    assert check.status is HealthStatus.OK and "'main'" in check.summary
    assert check.details["keys"] == ["main"] and key not in json.dumps(check.details)


async def test_redis_states(database_url: str, redis_url: str) -> None:
    async with AsyncMnemoStore(database_url, redis_url=redis_url) as store:
        up = (await store.health()).check("redis")
    assert up.status is HealthStatus.OK and up.latency_ms is not None
    assert "breaker" in up.details["cache"]  # the cache layer's own state rides along
    async with AsyncMnemoStore(database_url, redis_url="redis://127.0.0.1:1/0") as store:
        report = await store.health()
    down = report.check("redis")
    assert down.status is HealthStatus.WARN and report.healthy  # the database serves alone
    assert "MNEMOSTORE_REDIS_URL" in (down.action or "")


# -- the command --------------------------------------------------------------------------------------------------


def test_health_command(database_url: str) -> None:
    result = CliRunner().invoke(app, ["--database-url", database_url, "health"])
    assert result.exit_code == 0, result.output
    assert "database" in result.stdout and "healthy" in result.stdout
    assert "warn: encryption:" in result.stdout
    assert result.stderr == ""

    result = CliRunner().invoke(app, ["--database-url", database_url, "health", "--json"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["healthy"] is True and document["status"] == "warn"
    assert {c["name"]: c["status"] for c in document["checks"]}["schema"] == "ok"


def test_health_command_fails_with_one_line_per_failure(empty_database_url: str) -> None:
    if empty_database_url.startswith("sqlite"):  # an empty file: `health` creates none
        Path(empty_database_url.removeprefix("sqlite:///")).touch()
    result = CliRunner().invoke(app, ["--database-url", empty_database_url, "health"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["fail: schema: not initialised: run `mnemostore init` (or `mnemostore db upgrade`)"]
    result = CliRunner().invoke(app, ["--database-url", empty_database_url, "health", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["healthy"] is False


async def test_items_waiting_for_an_embedder_that_is_not_there_are_a_warning(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'waiting.db'}"
    async with AsyncMnemoStore(url) as store:  # the suite's hashing embedder: writes queue index jobs
        await store.migrate()
        tenant = await store.create_tenant("waiting")
        await store.tenant(tenant.id).store_memory("Sam is vegetarian", dedup=False)
        assert statuses(await store.health())["indexing"] == "ok"  # an embedder is there to do them
    async with AsyncMnemoStore(settings=Settings(database_url=url, embedder="none")) as store:
        report = await store.health()
    check = report.check("indexing")
    assert check.status is HealthStatus.WARN and "1 pending" in check.summary and "has none" in check.summary
    assert "pip install 'mnemostore[embeddings]'" in (check.action or "") and "reindex" in (check.action or "")
