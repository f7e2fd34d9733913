"""Backup, restore, export and erasure through the async store, on SQLite and PostgreSQL.

Each test clones its own scratch databases (``databases``, tests/fix_backup.py): an empty one, or one holding
``seed()``'s rows in every table, and compares databases with ``dump``, which reads the tables without the archive
code. The sync twin of ops/backup runs in test_backup_ops.py (the CLI and the concurrent-writer test use it);
a generated sync copy of this file would double the run time for little more coverage.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from mnemostore import (
    ArchiveCorrupted,
    ArchiveVersionUnsupported,
    AsyncMnemoStore,
    BackupError,
    ConflictError,
    RestoreConflict,
    SchemaOutOfDate,
    TenantNotFound,
    UserNotFound,
)
from mnemostore.ops._archive import RowCodec
from tests.backup_data import Databases, dump, rows_of

# -- round trips --------------------------------------------------------------------------------------------------


async def test_backup_restores_identically(backend: str, databases: Databases, tmp_path: Path) -> None:
    source, target = databases.seeded(backend), databases.new(backend)
    seeded = databases.seeded_ids(backend)
    async with AsyncMnemoStore(source) as store:
        result = await store.backup(tmp_path / "archive")
        usage = [await store.get_tenant_usage(t) for t in seeded.tenant_ids]
    assert result.path.is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "the staging folder was left behind"  # noqa: ASYNC240
    assert result.manifest.scope.kind == "full"
    assert result.rows == sum(len(rows) for rows in dump(source).values())
    async with AsyncMnemoStore(target) as store:
        restored = await store.restore(result.path, verify=True)
        assert sorted(restored.tenant_ids) == sorted(seeded.tenant_ids)
        assert restored.rows == {t.name: t.rows for t in result.manifest.tables}
        assert [await store.get_tenant_usage(t) for t in seeded.tenant_ids] == usage
        assert dump(target) == dump(source)
        # The restored store carries on where the source stopped: the next seq follows the archived ones.
        t = store.tenant(seeded.tenant_ids[0])
        conversation = await t.get_conversation_or_raise(seeded.conversations[0])
        added = await t.add_message(conversation.id, role="user", content="next")
        assert added.seq == conversation.last_seq + 1


@pytest.mark.parametrize("name, compress, packed", [("a.tar", False, "a.tar"), ("a", True, "a.tar.gz")])
async def test_tar_archives(databases: Databases, tmp_path: Path, name: str, compress: bool, packed: str) -> None:
    source, target = databases.seeded("sqlite"), databases.new("sqlite")
    async with AsyncMnemoStore(source) as store:
        result = await store.backup(tmp_path / name, compress=compress)
    assert result.path == tmp_path / packed and result.path.is_file()
    with tarfile.open(result.path) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json" and "tables/messages.jsonl" in names
    async with AsyncMnemoStore(target) as store:
        await store.restore(result.path, verify=True)
    assert dump(target) == dump(source)


async def test_archive_is_canonical_json_lines(backend: str, databases: Databases, tmp_path: Path) -> None:
    source = databases.seeded(backend)
    async with AsyncMnemoStore(source) as store:
        result = await store.backup(tmp_path / "a")
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert (manifest["format"], manifest["format_version"], manifest["source"]["backend"]) == (
        "mnemostore-backup",
        1,
        {"sqlite": "sqlite", "postgres": "postgresql"}[backend],
    )
    assert [t["name"] for t in manifest["tables"]][:2] == ["tenants", "api_keys"]  # foreign-key order
    messages = next(t for t in manifest["tables"] if t["name"] == "messages")
    assert messages["metadata"] == {} and messages["primary_key"] == ["tenant_id", "id"]
    assert messages["columns"]["id"] == "uuid" and messages["columns"]["created_at"] == "timestamp"
    lines = (result.path / "tables" / "messages.jsonl").read_bytes().splitlines()
    assert len(lines) == messages["rows"] == 24
    rows = [json.loads(line) for line in lines]
    assert [(r["tenant_id"], r["id"]) for r in rows] == sorted((r["tenant_id"], r["id"]) for r in rows)
    first = rows[0]
    assert list(first) == sorted(first) and first["metadata"] == {"n": 1, "tags": ["a", "b"]}
    assert first["created_at"].endswith("Z") and len(first["created_at"]) == len("2026-01-01T00:00:00.000000Z")
    assert "😀" in lines[0].decode()  # UTF-8, not \u escapes
    assert str(uuid.UUID(first["conversation_id"])) == first["conversation_id"]


# -- refusals: nothing is written ---------------------------------------------------------------------------------


def _damage(archive: Path, how: str, work: Path) -> Path:
    """A damaged copy of the folder archive ``archive``."""
    copy = work / f"damaged-{how}"
    shutil.copytree(archive, copy)
    messages = copy / "tables" / "messages.jsonl"
    data = messages.read_bytes()
    if how == "truncated":
        messages.write_bytes(data[: len(data) // 2])
    elif how == "one-byte":
        index = data.index(b"content") + 12
        messages.write_bytes(data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :])
    elif how == "missing-file":
        messages.unlink()
    elif how == "extra-row":
        messages.write_bytes(data + data.splitlines(keepends=True)[0])
    elif how == "wrong-version":
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["format_version"] = 99
        (copy / "manifest.json").write_text(json.dumps(manifest))
    elif how == "other-schema":
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["schema_revision"] = "9999"
        (copy / "manifest.json").write_text(json.dumps(manifest))
    elif how == "bad-manifest":
        (copy / "manifest.json").write_text("{not json")
    elif how in ("truncated.tar.gz", "one-byte.tar.gz"):
        packed = work / f"{how}"
        with tarfile.open(packed, "w:gz") as tar:
            tar.add(archive, arcname=".")
        blob = packed.read_bytes()
        if how == "truncated.tar.gz":
            blob = blob[: len(blob) * 2 // 3]
        else:
            blob = blob[:-40] + bytes([blob[-40] ^ 0xFF]) + blob[-39:]
        packed.write_bytes(blob)
        return packed
    return copy


DAMAGES = {
    "truncated": ArchiveCorrupted,
    "one-byte": ArchiveCorrupted,
    "missing-file": ArchiveCorrupted,
    "extra-row": ArchiveCorrupted,
    "wrong-version": ArchiveVersionUnsupported,
    "other-schema": ArchiveVersionUnsupported,
    "bad-manifest": ArchiveCorrupted,
    "truncated.tar.gz": ArchiveCorrupted,
    "one-byte.tar.gz": ArchiveCorrupted,
}


async def test_damaged_archives_are_refused_and_write_nothing(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    source, target = databases.seeded(backend), databases.new(backend)
    async with AsyncMnemoStore(source) as store:
        archive = (await store.backup(tmp_path / "good")).path
    empty = dump(target)
    async with AsyncMnemoStore(target) as store:
        for how, error in DAMAGES.items():
            with pytest.raises(error) as raised:
                await store.restore(_damage(archive, how, tmp_path), verify=True)
            assert "damaged" in str(raised.value) or "altered" in str(raised.value) or "version" in str(raised.value)
            assert dump(target) == empty, how
        with pytest.raises(BackupError, match="does not exist"):
            await store.restore(tmp_path / "nowhere")
        # The intact archive still restores into the untouched target.
        await store.restore(archive)
    assert dump(target) == dump(source)


async def test_verify_rolls_back_a_restore_that_reads_back_differently(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = databases.seeded("sqlite"), databases.new("sqlite")
    async with AsyncMnemoStore(source) as store:
        archive = (await store.backup(tmp_path / "a")).path
    decode = RowCodec.decode

    def altered(codec: RowCodec, line: bytes) -> dict[str, Any]:
        row = decode(codec, line)
        if codec.table.name == "messages":
            row["content"] += " (changed on the way in)"
        return row

    monkeypatch.setattr(RowCodec, "decode", altered)
    async with AsyncMnemoStore(target) as store:
        with pytest.raises(ArchiveCorrupted, match="verification failed: table messages reads back 24 rows"):
            await store.restore(archive, verify=True)
    assert not any(dump(target).values()), "a failed verification must roll the whole restore back"


async def test_restore_refuses_existing_data(backend: str, databases: Databases, tmp_path: Path) -> None:
    source, target = databases.seeded(backend), databases.new(backend)
    seeded = databases.seeded_ids(backend)
    async with AsyncMnemoStore(source) as store:
        archive = (await store.backup(tmp_path / "a")).path
    async with AsyncMnemoStore(target) as store:
        await store.create_tenant(seeded.names[1])  # the name of an archived tenant, another id
        before = dump(target)
        with pytest.raises(RestoreConflict, match="already holds 1 tenant") as raised:
            await store.restore(archive)
        assert isinstance(raised.value, ConflictError)
        with pytest.raises(RestoreConflict, match="another tenant named"):
            await store.restore(archive, tenant=seeded.names[1])
        with pytest.raises(TenantNotFound, match="its tenants"):
            await store.restore(archive, tenant="no-such-tenant")
        assert dump(target) == before
        # A tenant the target lacks restores beside the existing one, found by name or by id.
        await store.restore(archive, tenant=seeded.names[0], verify=True)
        with pytest.raises(RestoreConflict, match=str(seeded.tenant_ids[0])):
            await store.restore(archive, tenant=str(seeded.tenant_ids[0]))
    assert dump(target, tenant_id=seeded.tenant_ids[0]) == dump(source, tenant_id=seeded.tenant_ids[0])


async def test_restore_needs_the_archive_schema(backend: str, databases: Databases, tmp_path: Path) -> None:
    source, bare = databases.seeded(backend), databases.new(backend, migrated=False)
    async with AsyncMnemoStore(source) as store:
        archive = (await store.backup(tmp_path / "a")).path
    async with AsyncMnemoStore(bare) as store:
        with pytest.raises(SchemaOutOfDate, match="mnemostore db upgrade"):
            await store.restore(archive)
    with pytest.raises(BackupError, match="already exists"):
        async with AsyncMnemoStore(source) as store:
            await store.backup(archive)


# -- tenant and user archives -------------------------------------------------------------------------------------


async def test_tenant_backup_restores_into_a_fresh_store(backend: str, databases: Databases, tmp_path: Path) -> None:
    source, target = databases.seeded(backend), databases.new(backend)
    seeded = databases.seeded_ids(backend)
    first, second = seeded.tenant_ids
    async with AsyncMnemoStore(source) as store:
        result = await store.backup(tmp_path / "t.tar", tenant_id=first)
        usage = await store.get_tenant_usage(first)
        with pytest.raises(TenantNotFound):
            await store.backup(tmp_path / "missing", tenant_id=uuid.uuid4())
    assert result.manifest.scope.kind == "tenant" and result.manifest.scope.tenant_id == first
    async with AsyncMnemoStore(target) as store:
        restored = await store.restore(result.path, verify=True)
        assert restored.tenant_ids == (first,)
        assert await store.get_tenant_usage(first) == usage
        assert await store.get_tenant(second) is None
    assert dump(target) == dump(source, tenant_id=first)


async def test_user_export_holds_only_that_user(backend: str, databases: Databases, tmp_path: Path) -> None:
    source, target = databases.seeded(backend), databases.new(backend)
    seeded = databases.seeded_ids(backend)
    tenant, ada, bob = seeded.tenant_ids[0], seeded.users["0:ada"], seeded.users["0:bob"]
    async with AsyncMnemoStore(source) as store:
        t = store.tenant(tenant)
        result = await t.export(tmp_path / "ada", user_id=ada, compress=True)
        with pytest.raises(UserNotFound):
            await t.export(tmp_path / "ghost", user_id=uuid.uuid4())
    assert result.path.name == "ada.tar.gz" and result.manifest.scope.user_id == ada
    tables = {e.name: e.rows for e in result.manifest.tables if e.rows}  # tables added later hold none here
    assert tables == {
        "tenants": 1,
        "users": 1,
        "conversations": 1,
        "memories": 1,
        "user_identities": 2,
        "agent_metrics": 1,
        "checkpoints": 1,
        "interaction_events": 1,
        "messages": 6,
        "tool_executions": 1,
    }
    async with AsyncMnemoStore(target) as store:
        await store.restore(result.path, verify=True)
        usage = await store.get_tenant_usage(tenant)
        assert (usage.users, usage.conversations, usage.messages) == (1, 1, 6)
        assert await store.tenant(tenant).get_user(bob) is None
    restored = dump(target)
    assert {row["id"] for row in rows_of(restored, "users")} == {str(ada)}
    assert all(row["user_id"] == str(ada) for row in rows_of(restored, "conversations"))
    assert restored["messages"] <= dump(source)["messages"]


# -- erasure ------------------------------------------------------------------------------------------------------


async def test_erase_user_removes_everything_of_theirs_and_nothing_else(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    url = databases.seeded(backend)
    seeded = databases.seeded_ids(backend)
    tenant, ada = seeded.tenant_ids[0], seeded.users["0:ada"]
    before = dump(url)
    async with AsyncMnemoStore(url) as store:
        t = store.tenant(tenant)
        assert (await t.get_user(ada)) is not None  # cached now: the erasure must drop it
        usage = await store.get_tenant_usage(tenant)
        removed = await t.erase_user(ada)
        assert next(iter(removed)) == "users"
        assert {table: n for table, n in removed.items() if n} == {
            "users": 1,
            "conversations": 1,
            "memories": 1,
            "user_identities": 2,
            "agent_metrics": 1,
            "checkpoints": 1,
            "interaction_events": 1,
            "messages": 6,
            "tool_executions": 1,
        }
        assert await t.get_user(ada) is None
        assert await t.get_user_by_identity("discord", "ada-0") is None
        after_usage = await store.get_tenant_usage(tenant)
        assert after_usage == await store.recount_tenant_usage(tenant)
        assert (after_usage.users, after_usage.messages) == (usage.users - 1, usage.messages - 6)
        with pytest.raises(UserNotFound):
            await t.erase_user(ada)
    after = dump(url)
    for table, rows in before.items():
        if table == "tenant_usage":
            continue
        assert after[table] <= rows, f"{table} changed beyond deletions"
        assert len(rows - after[table]) == removed.get(table, 0), table
    assert not [row for rows in after.values() for row in rows if str(ada) in row]
