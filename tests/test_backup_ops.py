"""Backups across backends, under concurrent writes, from the CLI, and PostgreSQL's own pg_dump / pg_restore.

These use the sync store (the CLI's), so together with test_backup_store.py both twins of ops/backup run.
"""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from mnemostore import MnemoStore, NewMessage, Settings
from mnemostore.cli.main import app
from mnemostore.ops.backup import backup
from mnemostore.store.tables import TENANT_TABLES, metadata
from tests.backup_data import Databases, dump, rows_of

# -- SQLite -> PostgreSQL -> SQLite -------------------------------------------------------------------------------


def _checksums(path: Path) -> dict[str, tuple[int, str]]:
    manifest = json.loads((path / "manifest.json").read_text())
    return {t["name"]: (t["rows"], t["sha256"]) for t in manifest["tables"]}


def test_sqlite_to_postgres_and_back_gives_identical_data(databases: Databases, tmp_path: Path) -> None:
    lite, pg, lite_again = databases.seeded("sqlite"), databases.new("postgres"), databases.new("sqlite")
    with MnemoStore(lite) as store:
        first = store.backup(tmp_path / "from-sqlite").path
    with MnemoStore(pg) as store:
        store.restore(first, verify=True)  # the promotion path: embedded -> production
        second = store.backup(tmp_path / "from-postgres").path
    with MnemoStore(lite_again) as store:
        store.restore(second, verify=True)
    original = dump(lite)
    assert dump(pg) == original
    assert dump(lite_again) == original
    # The encoding is canonical: the same rows give byte-identical files whichever backend they were read from.
    assert _checksums(first) == _checksums(second)
    assert json.loads((second / "manifest.json").read_text())["source"] == {"backend": "postgresql"}


@pytest.mark.skipif("embeddings" not in metadata.tables, reason="no embeddings table in this schema")
def test_embeddings_travel_as_float32_with_their_models(databases: Databases, tmp_path: Path) -> None:
    lite, pg = databases.seeded("sqlite"), databases.new("postgres")
    seeded = databases.seeded_ids("sqlite")
    embeddings = metadata.tables["embeddings"]
    vectors = [[0.1, -2.5, 3.0e-7, 1.0], [0.25, 0.5, 0.75, 1.0]]
    engine = sa.create_engine(Settings(database_url=lite).database_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        for seq, (item, vector) in enumerate(zip(seeded.conversations[:2], vectors, strict=True), start=1):
            row = {
                "tenant_id": seeded.tenant_ids[0],
                "item_kind": "memory",
                "item_id": item,
                "model": "all-MiniLM-L6-v2",
                "dimension": 4,
                "vector": struct.pack("<4f", *vector),
                "seq": seq,
                "embedded_at": datetime.now(UTC),
            }
            conn.execute(sa.insert(embeddings).values(row))
    engine.dispose()
    with MnemoStore(lite) as store:
        first = store.backup(tmp_path / "lite")
    entry = first.manifest.table("embeddings")
    assert entry is not None and entry.rows == 2
    assert entry.metadata == {"vector_encoding": {"vector": "float32-le-base64"}, "models": {"all-MiniLM-L6-v2": 4}}
    archived = _jsonl(first.path / "tables" / "embeddings.jsonl")
    assert sorted(struct.unpack("<4f", base64.b64decode(r["vector"])) for r in archived) == sorted(
        struct.unpack("<4f", struct.pack("<4f", *v)) for v in vectors
    )
    # Into PostgreSQL (a pgvector column, or bytea on a server without it) and out again: the same bytes.
    with MnemoStore(pg) as store:
        store.restore(first.path, verify=True)
        second = store.backup(tmp_path / "pg")
    assert _checksums(second.path) == _checksums(first.path)


def test_pgvector_text_form_round_trips_float32_exactly() -> None:
    # What a restore sends pgvector, and how a backup reads pgvector's answer (the server needs no pgvector here).
    from mnemostore.ops._archive import _ENCODERS, _pg_vector

    encode = _ENCODERS["vector"]
    assert encode is not None
    values = [0.1, -2.5, 3.0e-7, 1.0, 1e30, -0.0]
    archived = encode(struct.pack(f"<{len(values)}f", *values))  # SQLite's bytes
    text = _pg_vector(archived)  # the parameter for a pgvector column
    assert text.startswith("[0.10000000149011612,") and encode(text) == archived
    assert encode([float(x) for x in text.strip("[]").split(",")]) == archived


# -- a backup taken while a writer appends --------------------------------------------------------------------------


class _PauseAfter:
    """Progress reporter that holds the backup, right after one table, until the writer has committed more."""

    def __init__(self, table: str, writes: list[int], more: int) -> None:
        self.table = table
        self.writes = writes
        self.more = more
        self.paused_at: int | None = None
        self.calls: dict[str, int] = {}

    def start(self, phase: str, totals: Mapping[str, int]) -> None:
        self.totals = dict(totals)

    def advance(self, table: str, rows: int) -> None:
        self.calls[table] = self.calls.get(table, 0) + 1
        if table == self.table and self.paused_at is None:
            self.paused_at = self.writes[0]
            deadline = time.monotonic() + 20
            while self.writes[0] < self.paused_at + self.more and time.monotonic() < deadline:
                time.sleep(0.005)


def test_backup_during_concurrent_writes_restores_consistently(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    url, target = databases.seeded(backend), databases.new(backend)
    seeded = databases.seeded_ids(backend)
    tenant, conversations = seeded.tenant_ids[0], seeded.conversations[:2]  # tenant 0's two conversations
    writes = [0]
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            with MnemoStore(url) as other:
                t = other.tenant(tenant)
                while not stop.is_set():
                    n = writes[0]
                    batch = [NewMessage(role="user", content=f"w{n}-{i} ✓", prompt_tokens=i) for i in range(3)]
                    t.add_messages(conversations[n % 2], batch)
                    if n % 5 == 0:
                        t.create_conversation(seeded.users["0:ada"], title=f"new {n}")
                    writes[0] = n + 1
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while writes[0] < 3 and not failures and time.monotonic() < deadline:  # the writer is up and running
            time.sleep(0.005)
        assert not failures, failures
        pause = _PauseAfter("conversations", writes, more=15)
        with MnemoStore(url) as store:
            # Small batches: messages stream in several partitions, proving the table is never read whole.
            result = backup(store._db, tmp_path / "live", progress=pause, batch_size=10)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not failures, failures
    assert pause.paused_at is not None and writes[0] >= pause.paused_at + 15, "the writer did not write meanwhile"
    assert pause.calls["messages"] > 2
    archived = {t.name: t.rows for t in result.manifest.tables}
    assert archived == pause.totals  # counted and streamed in the same snapshot
    assert archived["messages"] < len(dump(url)["messages"])  # later writes are not in it

    with MnemoStore(target) as store:
        store.restore(result.path, verify=True)
        usage = store.get_tenant_usage(tenant)
    restored = dump(target)
    by_conversation: dict[str, list[int]] = {}
    for message in rows_of(restored, "messages"):
        by_conversation.setdefault(message["conversation_id"], []).append(message["seq"])
    for conversation in rows_of(restored, "conversations"):
        seqs = sorted(by_conversation.get(conversation["id"], []))
        assert conversation["message_count"] == len(seqs)
        assert seqs == list(range(1, conversation["last_seq"] + 1)), "seqs are not gap-free"
    # The archived usage counters were read in the same snapshot: they equal the recount of the restored rows.
    archived_usage = {row["tenant_id"]: row for row in _jsonl(result.path / "tables" / "tenant_usage.jsonl")}
    assert archived_usage[str(tenant)]["messages"] == usage.messages
    assert archived_usage[str(tenant)]["conversations"] == usage.conversations
    assert archived_usage[str(tenant)]["storage_bytes"] == usage.storage_bytes


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the CLI ------------------------------------------------------------------------------------------------------


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--database-url", url, *args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_cli_backup_restore_export_erase(backend: str, databases: Databases, tmp_path: Path) -> None:
    url, target, other = databases.seeded(backend), databases.new(backend), databases.new(backend)
    seeded = databases.seeded_ids(backend)
    name = seeded.names[0]

    out = ok(run(url, "backup", str(tmp_path / "full"), "--compress")).stdout
    assert "Backed up the database" in out and "full.tar.gz" in out
    out = ok(run(target, "restore", str(tmp_path / "full.tar.gz"), "--verify")).stdout
    assert "Verified" in out and "usage counters recounted" in out
    assert dump(target) == dump(url)
    assert "already holds 2 tenant(s)" in error_line(run(target, "restore", str(tmp_path / "full.tar.gz")))

    ok(run(url, "backup", str(tmp_path / "one.tar"), "--tenant", name))
    assert "Restored" in ok(run(other, "restore", str(tmp_path / "one.tar"))).stdout
    ok(run(url, "export", "--tenant", name, "--user", "ada-0@example.com", str(tmp_path / "ada")))
    assert json.loads((tmp_path / "ada" / "manifest.json").read_text())["scope"]["kind"] == "user"
    assert "not found" in error_line(run(url, "export", "--tenant", name, "--user", "nobody", str(tmp_path / "x")))

    messages = tmp_path / "ada" / "tables" / "messages.jsonl"
    messages.write_bytes(messages.read_bytes()[:-10])
    assert "truncated" in error_line(run(databases.new(backend), "restore", str(tmp_path / "ada")))

    out = ok(run(url, "erase", "--tenant", name, "--user", str(seeded.users["0:ada"]), "--yes")).stdout
    assert "Erased user" in out and "messages" in out
    assert str(seeded.users["0:ada"]) not in "".join(r for rows in dump(url).values() for r in rows)
    assert "not found" in error_line(run(url, "erase", "--tenant", name, "--user", str(seeded.users["0:ada"]), "-y"))


# -- PostgreSQL's native path ---------------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _security(url: str) -> dict[str, Any]:
    """Row-level security, policies and grants of the mnemostore tables."""
    engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            flags = conn.execute(
                sa.text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'alembic_version'"
                )
            ).all()
            policies = conn.execute(sa.text("SELECT tablename, policyname, qual, with_check FROM pg_policies")).all()
            grants = conn.execute(
                sa.text(
                    "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee = 'mnemostore_app'"
                )
            ).all()
    finally:
        engine.dispose()
    return {"flags": sorted(flags), "policies": sorted(policies), "grants": sorted(grants)}


@pytest.mark.postgres_only
def test_pg_dump_and_pg_restore_keep_data_policies_and_grants(databases: Databases, tmp_path: Path) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump / pg_restore are not installed")
    source, fresh = databases.seeded("postgres"), databases.new("postgres", migrated=False)
    seeded = databases.seeded_ids("postgres")
    archive = tmp_path / "mnemostore.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(archive), _libpq(source)], check=True, capture_output=True)
    subprocess.run(
        ["pg_restore", "--exit-on-error", "--no-owner", "-d", _libpq(fresh), str(archive)],
        check=True,
        capture_output=True,
    )
    assert dump(fresh) == dump(source)
    security = _security(fresh)
    assert security == _security(source)
    assert {name for name, rls, force in security["flags"] if rls and force} == {"tenants", *TENANT_TABLES}
    assert len(security["policies"]) == 2 * (1 + len(TENANT_TABLES))  # tenant_isolation + admin_access each
    assert {(t, "DELETE") for t in TENANT_TABLES} <= set(security["grants"])
    # The restored database works, and still keeps tenants apart (the store runs as mnemostore_app).
    first, second = seeded.tenant_ids
    with MnemoStore(fresh) as store:
        assert len(store.tenant(first).get_conversation_history(seeded.conversations[0]).messages) == 6
        assert store.tenant(second).get_conversation(seeded.conversations[0]) is None
        with MnemoStore(source) as original:
            assert _checksums(store.backup(tmp_path / "b").path) == _checksums(original.backup(tmp_path / "a").path)
