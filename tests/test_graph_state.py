"""mnemostore's graph state (the storage under the LangGraph checkpointers), through the tenant store's methods.

What LangGraph's conformance suite does not check: each channel value is stored once per version, pruning and run
deletion free the values and writes nothing references any more (and keep those still referenced), listings page
without skipping rows that share a checkpoint id, tenants never see each other's threads, bad input is refused.
Row counts are read from the tables directly, as an operator would.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from mnemostore import (
    AsyncMnemoStore,
    AsyncTenantStore,
    ConflictError,
    GraphChannelValue,
    GraphWrite,
    InvalidCursor,
    InvalidInput,
    InvalidMetadata,
    TenantStore,
)
from mnemostore.store.tables import graph_checkpoint_blobs, graph_checkpoint_writes, graph_checkpoints


def value(channel: str, version: str, data: bytes) -> GraphChannelValue:
    return GraphChannelValue(channel=channel, version=version, type="bytes", blob=data)


async def put(
    t: AsyncTenantStore,
    thread: str,
    checkpoint_id: str,
    versions: dict[str, str],
    new: dict[str, bytes],
    *,
    ns: str = "",
    parent: str | None = None,
    run_id: str | None = None,
) -> None:
    await t.put_graph_checkpoint(
        thread,
        checkpoint_id,
        checkpoint=b"cp-" + checkpoint_id.encode(),
        checkpoint_type="bytes",
        channel_versions=versions,
        metadata={"step": int(checkpoint_id[-1]), **({"run_id": run_id} if run_id else {})},
        checkpoint_ns=ns,
        parent_checkpoint_id=parent,
        channel_values=[value(c, versions[c], data) for c, data in new.items()],
    )


def count(database_url: str, table: sa.Table, tenant: AsyncTenantStore, thread: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:  # the test's login is a superuser: it sees every tenant's rows
            query = sa.select(sa.func.count()).where(table.c.tenant_id == tenant.tenant_id, table.c.thread_id == thread)
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


async def test_values_are_stored_once_per_version_and_read_by_the_versions_a_checkpoint_holds(
    atenant: AsyncTenantStore, database_url: str
) -> None:
    await put(atenant, "t", "c1", {"a": "1", "b": "1"}, {"a": b"a1", "b": b"b1"})
    await put(atenant, "t", "c2", {"a": "2", "b": "1"}, {"a": b"a2"}, parent="c1")
    await put(atenant, "t", "c3", {"a": "2", "b": "1"}, {}, parent="c2")
    assert count(database_url, graph_checkpoint_blobs, atenant, "t") == 3

    latest = await atenant.get_graph_checkpoint("t")
    assert latest is not None and latest.checkpoint_id == "c3" and latest.parent_checkpoint_id == "c2"
    assert {(v.channel, v.version, v.blob) for v in latest.channel_values} == {("a", "2", b"a2"), ("b", "1", b"b1")}
    first = await atenant.get_graph_checkpoint("t", checkpoint_id="c1")
    assert first is not None and {v.blob for v in first.channel_values} == {b"a1", b"b1"}
    assert first.checkpoint == b"cp-c1" and first.metadata == {"step": 1}


async def test_prune_keeps_the_latest_and_frees_what_only_older_checkpoints_referenced(
    atenant: AsyncTenantStore, database_url: str
) -> None:
    await put(atenant, "t", "c1", {"a": "1", "b": "1"}, {"a": b"a1", "b": b"b1"})
    await put(atenant, "t", "c2", {"a": "2", "b": "1"}, {"a": b"a2"}, parent="c1")
    await put(atenant, "t", "c3", {"a": "3", "b": "1"}, {"a": b"a3"}, parent="c2")
    await put(atenant, "t", "c1", {"x": "1"}, {"x": b"x1"}, ns="child")
    await put(atenant, "t", "c2", {"x": "2"}, {"x": b"x2"}, ns="child", parent="c1")
    for checkpoint_id in ("c1", "c2", "c3"):
        await atenant.put_graph_writes(
            "t", checkpoint_id, [GraphWrite(task_id="k", idx=0, channel="a", type="b", blob=b"w")]
        )
    await put(atenant, "other", "c1", {"a": "1"}, {"a": b"kept"})

    assert await atenant.prune_graph_threads(["t"], keep=1) == 3
    assert [c.checkpoint_id for c in (await atenant.list_graph_checkpoints(thread_id="t", checkpoint_ns="")).items] == [
        "c3"
    ]
    latest = await atenant.get_graph_checkpoint("t")
    assert latest is not None and {v.blob for v in latest.channel_values} == {b"a3", b"b1"}  # b1 came from c1
    assert [w.blob for w in latest.pending_writes] == [b"w"]
    child = await atenant.get_graph_checkpoint("t", checkpoint_ns="child")
    assert child is not None and [v.blob for v in child.channel_values] == [b"x2"]
    assert count(database_url, graph_checkpoint_blobs, atenant, "t") == 3  # a3, b1, x2
    assert count(database_url, graph_checkpoint_writes, atenant, "t") == 1
    assert count(database_url, graph_checkpoint_blobs, atenant, "other") == 1

    assert await atenant.prune_graph_threads(["t"], keep=0) == 2
    for table in (graph_checkpoints, graph_checkpoint_blobs, graph_checkpoint_writes):
        assert count(database_url, table, atenant, "t") == 0
    with pytest.raises(InvalidInput, match="keep"):
        await atenant.prune_graph_threads(["t"], keep=-1)
    with pytest.raises(InvalidInput, match="list"):
        await atenant.prune_graph_threads("t")


async def test_deleting_runs_keeps_values_the_remaining_checkpoints_reference(
    atenant: AsyncTenantStore, database_url: str
) -> None:
    await put(atenant, "t", "c1", {"a": "1"}, {"a": b"a1"}, run_id="run-1")
    await put(atenant, "t", "c2", {"a": "1", "b": "1"}, {"b": b"b1"}, parent="c1", run_id="run-2")
    await put(atenant, "t", "c3", {"a": "2", "b": "1"}, {"a": b"a2"}, parent="c2", run_id="run-2")
    await atenant.put_graph_writes("t", "c3", [GraphWrite(task_id="k", idx=0, channel="a", type="b", blob=b"w")])

    assert await atenant.delete_graph_runs(["run-2", "no-such-run"]) == 2
    assert count(database_url, graph_checkpoint_writes, atenant, "t") == 0
    assert count(database_url, graph_checkpoint_blobs, atenant, "t") == 1
    left = await atenant.get_graph_checkpoint("t")
    assert left is not None and left.checkpoint_id == "c1" and [v.blob for v in left.channel_values] == [b"a1"]
    assert await atenant.delete_graph_runs([]) == 0


async def test_writes_are_idempotent_per_task_and_index_unless_replaced(atenant: AsyncTenantStore) -> None:
    await put(atenant, "t", "c1", {}, {})
    first = [GraphWrite(task_id="k", idx=0, channel="a", type="b", blob=b"first", task_path="p")]
    second = [GraphWrite(task_id="k", idx=0, channel="a", type="b", blob=b"second", task_path="p")]
    await atenant.put_graph_writes("t", "c1", first)
    await atenant.put_graph_writes("t", "c1", second)
    found = await atenant.get_graph_checkpoint("t")
    assert found is not None and [w.blob for w in found.pending_writes] == [b"first"]
    await atenant.put_graph_writes("t", "c1", second, replace=True)
    found = await atenant.get_graph_checkpoint("t")
    assert found is not None and [w.blob for w in found.pending_writes] == [b"second"]


async def test_listing_pages_through_copies_that_share_checkpoint_ids(atenant: AsyncTenantStore) -> None:
    for i in range(1, 4):
        await put(atenant, "a", f"c{i}", {"x": str(i)}, {"x": str(i).encode()}, parent=f"c{i - 1}" if i > 1 else None)
    assert await atenant.copy_graph_thread("a", "b") == 3
    assert await atenant.copy_graph_thread("nothing", "c") == 0
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = await atenant.list_graph_checkpoints(limit=2, cursor=cursor)
        seen += [(c.checkpoint_id, c.thread_id) for c in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [("c3", "b"), ("c3", "a"), ("c2", "b"), ("c2", "a"), ("c1", "b"), ("c1", "a")]
    older = await atenant.list_graph_checkpoints(thread_id="b", before="c3", metadata={"step": 1})
    assert [(c.checkpoint_id, [v.blob for v in c.channel_values]) for c in older.items] == [("c1", [b"1"])]

    with pytest.raises(ConflictError, match="already has checkpoints"):
        await atenant.copy_graph_thread("a", "b")
    with pytest.raises(InvalidInput, match="onto itself"):
        await atenant.copy_graph_thread("a", "a")
    with pytest.raises(InvalidCursor):
        await atenant.list_graph_checkpoints(cursor="not-a-cursor")


async def test_tenants_do_not_see_each_others_threads(astore: AsyncMnemoStore, atenant: AsyncTenantStore) -> None:
    other = astore.tenant((await astore.create_tenant(f"tenant-{uuid.uuid4().hex[:12]}")).id)
    await put(atenant, "shared-name", "c1", {"a": "1"}, {"a": b"mine"})
    assert await other.get_graph_checkpoint("shared-name") is None
    assert (await other.list_graph_checkpoints()).items == []
    assert await other.delete_graph_thread("shared-name") == 0
    assert await other.prune_graph_threads(["shared-name"], keep=0) == 0
    await put(other, "shared-name", "c1", {"a": "1"}, {"a": b"theirs"})
    mine = await atenant.get_graph_checkpoint("shared-name")
    assert mine is not None and [v.blob for v in mine.channel_values] == [b"mine"]
    assert await atenant.delete_graph_thread("shared-name") == 1
    theirs = await other.get_graph_checkpoint("shared-name")
    assert theirs is not None and [v.blob for v in theirs.channel_values] == [b"theirs"]


async def test_bad_input_is_refused_before_anything_is_written(atenant: AsyncTenantStore) -> None:
    with pytest.raises(InvalidInput, match="thread_id"):
        await put(atenant, "", "c1", {}, {})
    with pytest.raises(InvalidInput, match="not in channel_versions"):
        await atenant.put_graph_checkpoint(
            "t",
            "c1",
            checkpoint=b"",
            checkpoint_type="b",
            channel_versions={"a": "1"},
            channel_values=[value("a", "2", b"")],
        )
    with pytest.raises(InvalidInput, match="bytes"):
        await atenant.put_graph_checkpoint("t", "c1", checkpoint="text", checkpoint_type="b", channel_versions={})  # type: ignore[arg-type]
    with pytest.raises(InvalidMetadata):
        await atenant.put_graph_checkpoint(
            "t", "c1", checkpoint=b"", checkpoint_type="b", channel_versions={}, metadata={"when": object()}
        )
    with pytest.raises(InvalidInput, match="255"):
        await atenant.get_graph_checkpoint("x" * 256)
    assert await atenant.get_graph_checkpoint("t") is None


def test_sync_twin(tenant: TenantStore) -> None:
    tenant.put_graph_checkpoint(
        "t",
        "c1",
        checkpoint=b"cp",
        checkpoint_type="b",
        channel_versions={"a": "1"},
        channel_values=[value("a", "1", b"v")],
    )
    found = tenant.get_graph_checkpoint("t")
    assert found is not None and [v.blob for v in found.channel_values] == [b"v"]
    assert tenant.prune_graph_threads(["t"]) == 0
    assert tenant.delete_graph_thread("t") == 1


async def test_a_tenant_backup_restores_its_graph_state(
    astore: AsyncMnemoStore, atenant: AsyncTenantStore, tmp_path: Path
) -> None:
    await put(atenant, "t", "c1", {"a": "1"}, {"a": b"\x00\xffbinary"})
    await atenant.put_graph_writes(
        "t", "c1", [GraphWrite(task_id="k", idx=-3, channel="__interrupt__", type="b", blob=b"i")]
    )
    tenant = await atenant.resolve()
    await astore.backup(tmp_path / "archive", tenant_id=tenant.id)
    await astore.delete_tenant(tenant.id)
    assert await atenant.get_graph_checkpoint("t") is None
    await astore.restore(tmp_path / "archive", tenant=tenant.id, verify=True)
    found = await atenant.get_graph_checkpoint("t")
    assert found is not None and [v.blob for v in found.channel_values] == [b"\x00\xffbinary"]
    assert [(w.idx, w.channel, w.blob) for w in found.pending_writes] == [(-3, "__interrupt__", b"i")]
