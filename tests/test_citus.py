"""On a Citus cluster (a coordinator and two workers, tests/fix_citus.py): what Citus itself promises the store.

* ``mnemostore db upgrade`` distributes every tenant table by ``tenant_id`` in one co-location group, makes
  ``tenants`` a reference table and the hot path's routines distributed functions (migration 0013); a downgrade
  brings the tables back to the coordinator, and ``db status`` reads the cluster as it reads one server.
* The store's statements for a tenant run on one shard (EXPLAIN: a single task on one worker) for the append,
  a history page and a full-text search; the two routines are handed whole to the tenant's worker.
* A tenant's shard group moves to the other worker (``citus_move_shard_placement``) while a thread keeps
  appending: every acknowledged message is there afterwards, numbered without a gap, in order.
* Backup and restore work cluster to cluster.

The store's behaviour tests run on the cluster too (the ``citus`` backend of tests/fix_db.py, for the modules
named in tests/fix_citus.py).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from mnemostore import AsyncMnemoStore, MnemoStore, Settings
from mnemostore.ops import migrate
from mnemostore.store.tables import TENANT_TABLES
from tests.fix_citus import CitusCluster
from tests.support import capture

pytestmark = pytest.mark.parametrize("backend", ["citus"], indirect=True, scope="session")

ROUTINES = {"mnemostore_append_messages", "mnemostore_history"}


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def catalog(url: str) -> dict[str, Any]:
    """What Citus knows of the schema: each table's method, column and co-location group; the routines."""
    with psycopg.connect(libpq(url)) as conn:
        tables = {
            name: (method, column, group)
            for name, method, column, group in conn.execute(
                "SELECT logicalrelid::text, partmethod, column_to_column_name(logicalrelid, partkey), colocationid "
                "FROM pg_dist_partition"
            )
        }
        routines = {
            name: argument
            for name, argument in conn.execute(
                "SELECT p.proname, o.distribution_argument_index FROM pg_dist_object o JOIN pg_proc p "
                "ON o.classid = 'pg_proc'::regclass AND o.objid = p.oid WHERE p.proname LIKE 'mnemostore_%' "
                "AND o.distribution_argument_index IS NOT NULL"
            )
        }
    return {"tables": tables, "routines": routines}


# -- migrations ---------------------------------------------------------------------------------------------------


def test_upgrade_distributes_and_downgrade_undistributes(empty_database_url: str) -> None:
    settings = Settings(database_url=empty_database_url)
    assert [r.revision for r in migrate.get_migration_status(settings).pending][-1] == "0013"
    migrate.upgrade(settings)

    found = catalog(empty_database_url)
    tenant_tables = {name: found["tables"][name] for name in TENANT_TABLES}
    assert found["tables"]["tenants"][0] == "n"  # a reference table (no distribution column)
    assert {(method, column) for method, column, _ in tenant_tables.values()} == {("h", "tenant_id")}
    assert len({group for _, _, group in tenant_tables.values()}) == 1, "all co-located"
    assert set(found["tables"]) == {"tenants", *TENANT_TABLES}
    assert found["routines"] == dict.fromkeys(ROUTINES, 0)  # distributed on p_tenant, their first argument
    status = migrate.get_migration_status(settings)
    assert (status.current, status.pending) == ("0013", [])

    migrate.downgrade(settings, "0012")
    assert catalog(empty_database_url)["tables"] == {}
    assert migrate.get_migration_status(settings).current == "0012"
    migrate.upgrade(settings)
    assert set(catalog(empty_database_url)["tables"]) == {"tenants", *TENANT_TABLES}
    migrate.upgrade(settings)  # at head: nothing to do
    assert migrate.get_migration_status(settings).up_to_date


def test_the_setting_can_keep_the_tables_local(empty_database_url: str) -> None:
    settings = Settings(database_url=empty_database_url, citus_distribute="off")
    migrate.upgrade(settings)
    assert catalog(empty_database_url)["tables"] == {}
    with MnemoStore(settings=settings) as store:  # and the store works on the coordinator's local tables
        tenant = store.tenant(store.create_tenant(f"local-{uuid.uuid4().hex[:8]}").id)
        conversation = tenant.create_conversation(tenant.create_user().id)
        assert tenant.add_message(conversation.id, role="user", content="hi").seq == 1


# -- router plans -------------------------------------------------------------------------------------------------


def single_task_node(plan: str) -> str:
    """The worker a single-task Citus plan runs on; fails unless the plan is exactly that."""
    assert "Custom Scan (Citus Adaptive)" in plan, plan
    assert "Task Count: 1\n" in plan + "\n", plan
    nodes = [line.split("Node: ", 1)[1] for line in plan.splitlines() if "Node: " in line]
    assert len(nodes) == 1, plan
    return nodes[0]


def shard_node(url: str, tenant_id: uuid.UUID) -> str:
    """host:port of the worker holding the tenant's shard group."""
    with psycopg.connect(libpq(url)) as conn:
        row = conn.execute(
            "SELECT nodename || ':' || nodeport FROM pg_dist_shard_placement "
            "WHERE shardid = get_shard_id_for_distribution_column('messages', %s)",
            [tenant_id],
        ).fetchone()
    assert row is not None
    return str(row[0])


async def test_a_tenants_append_history_and_search_run_on_one_shard(database_url: str, astore: AsyncMnemoStore) -> None:
    tenant_id = (await astore.create_tenant(f"router-{uuid.uuid4().hex[:8]}")).id
    t = astore.tenant(tenant_id)
    conversation = await t.create_conversation((await t.create_user()).id)
    with capture(astore) as sent:
        await t.add_message(conversation.id, role="user", content="the shard router plan")
        await t.get_conversation_history(conversation.id)
        assert [h.content for h in await t.search("router", mode="fulltext")] == ["the shard router plan"]
    searches = [(s, p) for s, p in sent if "search_tsv" in s and s.lstrip().upper().startswith("SELECT")]
    assert searches, [s for s, _ in sent]
    worker = shard_node(database_url, tenant_id).replace(":", " port=")

    plans: dict[str, str] = {}
    # The routines run in autocommit (the hot path's one call), where Citus hands them to the tenant's worker.
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        conn.execute('SET ROLE "mnemostore_app"')
        for name, call, params in (
            ("append", "SELECT last_seq, existing FROM mnemostore_append_messages(%s, %s, now(), '[]', false)", []),
            ("history", "SELECT * FROM mnemostore_history(%s, %s, 50, 'before', NULL)", []),
        ):
            rows = conn.execute("EXPLAIN " + call, [tenant_id, conversation.id, *params]).fetchall()
            plans[name] = "\n".join(row[0] for row in rows)
    async with astore._db.transaction(tenant_id) as uow:  # the search, as the store runs it
        for number, (statement, parameters) in enumerate(searches):
            result = await uow.connection.exec_driver_sql("EXPLAIN " + statement, parameters)
            plans[f"search {number}"] = "\n".join(row[0] for row in result)
    for name, plan in plans.items():
        assert f"host={worker}" in single_task_node(plan), (name, plan)
    assert "Function Scan on mnemostore_append_messages" in plans["append"]
    assert "Function Scan on mnemostore_history" in plans["history"]


# -- tenant moves -------------------------------------------------------------------------------------------------


def test_a_tenant_moves_to_the_other_worker_while_appends_continue(
    database_url: str, store: MnemoStore, citus_cluster: CitusCluster
) -> None:
    tenant_id = store.create_tenant(f"move-{uuid.uuid4().hex[:8]}").id
    t = store.tenant(tenant_id)
    conversation = t.create_conversation(t.create_user().id)
    acknowledged: list[tuple[int, str]] = []
    failures: list[BaseException] = []
    moved = threading.Event()

    def append() -> None:
        after_move = 0
        while after_move < 20 and len(acknowledged) < 5000:
            content = f"message {len(acknowledged)}"
            try:
                message = t.add_message(conversation.id, role="user", content=content)
            except Exception as error:  # counted: the test fails on any
                failures.append(error)
                return
            acknowledged.append((message.seq, content))
            after_move += moved.is_set()

    source = shard_node(database_url, tenant_id)
    target = next(f"127.0.0.1:{p}" for p in citus_cluster.workers if f"127.0.0.1:{p}" != source)
    writer = threading.Thread(target=append)
    writer.start()
    try:
        while len(acknowledged) < 20 and writer.is_alive():
            time.sleep(0.01)
        with psycopg.connect(libpq(database_url), autocommit=True) as conn:
            (shard,) = conn.execute(
                "SELECT get_shard_id_for_distribution_column('messages', %s)", [tenant_id]
            ).fetchone() or (None,)
            before = len(acknowledged)
            # block_writes: the group's writes wait while it is copied, then go to its new worker. (Citus's
            # non-blocking mode replicates logically, and PostgreSQL 15 refuses to replicate into tables under
            # row-level security: its apply worker's role cannot bypass the policies.)
            conn.execute("SET statement_timeout = '120s'")
            conn.execute(
                "SELECT citus_move_shard_placement(%s, '127.0.0.1', %s, '127.0.0.1', %s, "
                "shard_transfer_mode => 'block_writes')",
                [shard, int(source.split(":")[1]), int(target.split(":")[1])],
            )
        moved.set()
    finally:
        writer.join(timeout=120)
    assert failures == []
    assert shard_node(database_url, tenant_id) == target
    assert len(acknowledged) >= before + 20, "the appends did not carry on on the new worker"
    history = t.get_conversation_history(conversation.id, limit=len(acknowledged) + 10).messages
    assert [(m.seq, m.content) for m in history] == acknowledged
    assert [seq for seq, _ in acknowledged] == list(range(1, len(acknowledged) + 1))
    assert store.get_tenant_usage(tenant_id).messages == len(acknowledged)


# -- backup and restore -------------------------------------------------------------------------------------------


def counts(url: str) -> dict[str, int]:
    """Rows per table, read as the superuser (no row-level security): the ground truth."""
    with psycopg.connect(libpq(url)) as conn:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in ("tenants", *TENANT_TABLES)
        }


@pytest.fixture
def second_cluster_database(citus_cluster: CitusCluster) -> Iterator[str]:
    url = citus_cluster.create_database()
    try:
        migrate.upgrade(Settings(database_url=url))
        yield url
    finally:
        citus_cluster.drop_database(url)


async def test_backup_and_restore_cluster_to_cluster(
    empty_database_url: str, second_cluster_database: str, tmp_path: Path
) -> None:
    migrate.upgrade(Settings(database_url=empty_database_url))
    async with AsyncMnemoStore(empty_database_url) as source:
        tenants = [(await source.create_tenant(f"backup-{n}-{uuid.uuid4().hex[:6]}")).id for n in range(3)]
        for tenant_id in tenants:
            t = source.tenant(tenant_id)
            user = await t.create_user(display_name="ada")
            conversation = await t.create_conversation(user.id, title="notes")
            await t.add_messages(conversation.id, [{"role": "user", "content": f"line {i}"} for i in range(5)])
            await t.store_memory("likes tea", user_id=user.id)
            await t.upsert_knowledge("docs", "intro", "hello")
        result = await source.backup(tmp_path / "archive")
    async with AsyncMnemoStore(second_cluster_database) as target:
        restored = await target.restore(result.path, verify=True)
        assert sorted(restored.tenant_ids) == sorted(tenants)
        t = target.tenant(tenants[0])
        (conversation,) = (await t.list_conversations((await t.list_users()).items[0].id)).items
        history = await t.get_conversation_history(conversation.id)
        assert [m.content for m in history.messages] == [f"line {i}" for i in range(5)]
        assert (await t.add_message(conversation.id, role="user", content="next")).seq == 6
    restored_counts = counts(second_cluster_database)
    restored_counts["messages"] -= 1
    restored_counts["index_jobs"] = counts(empty_database_url)["index_jobs"]  # the extra append's job, if any
    assert restored_counts == counts(empty_database_url)
    with psycopg.connect(libpq(second_cluster_database)) as conn:  # the restored rows sit on the workers
        placed = conn.execute(
            "SELECT count(DISTINCT nodeport) FROM pg_dist_shard_placement p JOIN pg_dist_shard s USING (shardid) "
            "WHERE s.logicalrelid = 'messages'::regclass"
        ).fetchone()
    assert placed == (2,)
