"""Maintenance prunes the search outbox: jobs done longer ago than ``index_jobs_retention_hours`` are deleted, in
batches; pending, running and failed jobs stay. On SQLite and PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from mnemostore import MnemoStore, Settings, TenantStore
from mnemostore.cli.main import app
from mnemostore.ops import migrate
from mnemostore.store.tables import index_jobs


def _states(t: TenantStore) -> dict[str, int]:
    with t._tx() as uow:
        rows = uow.connection.execute(
            sa.select(index_jobs.c.state, sa.func.count())
            .where(index_jobs.c.tenant_id == t.tenant_id)
            .group_by(index_jobs.c.state)
        ).all()
    return {state: int(count) for state, count in rows}


def _set_state(t: TenantStore, memory_id: uuid.UUID, state: str) -> None:
    with t._tx(write=True) as uow:
        uow.connection.execute(
            sa.update(index_jobs)
            .where(index_jobs.c.tenant_id == t.tenant_id, index_jobs.c.item_id == memory_id)
            .values(state=state, last_error="boom" if state == "failed" else None)
        )


def _tenant_with_jobs(store: MnemoStore, *, done: int) -> tuple[TenantStore, uuid.UUID, uuid.UUID]:
    """A tenant with ``done`` jobs done, one failed and one pending (both old enough to be pruned if done)."""
    t = store.tenant(store.create_tenant(f"prune-{uuid.uuid4().hex[:12]}").id)
    for i in range(done):
        t.store_memory(f"fact number {i}", dedup=False)
    failed = t.store_memory("a fact whose embedding failed", dedup=False).id
    _set_state(t, failed, "failed")
    t.wait_for_indexing(timeout_seconds=60)
    pending = t.store_memory("a fact still waiting for the worker", dedup=False).id
    return t, failed, pending


@pytest.fixture
def observed(database_url: str) -> Iterator[tuple[MnemoStore, list[str]]]:
    """A store of its own (the observer stays on its engine) recording the kind of every statement."""
    kinds: list[str] = []
    with MnemoStore(database_url) as store:
        store.observe_queries(lambda kind, _seconds: kinds.append(kind))
        yield store, kinds


def test_done_jobs_past_retention_are_pruned_in_batches(observed: tuple[MnemoStore, list[str]]) -> None:
    store, kinds = observed
    assert store.settings.index_jobs_retention_hours == 24.0
    t, failed, pending = _tenant_with_jobs(store, done=5)
    assert _states(t) == {"done": 5, "failed": 1, "pending": 1}

    # Finished just now: kept.
    report = store.run_maintenance(t.tenant_id)
    assert report.pruned_index_jobs == 0 and _states(t)["done"] == 5

    later = datetime.now(UTC) + timedelta(hours=25)
    dry = store.run_maintenance(t.tenant_id, now=later, dry_run=True)
    assert dry.dry_run and dry.pruned_index_jobs == 5
    assert dry.index_jobs_done_before == later - timedelta(hours=24)
    assert _states(t)["done"] == 5

    kinds.clear()
    report = store.run_maintenance(t.tenant_id, now=later, batch_size=2)
    assert report.pruned_index_jobs == 5
    assert kinds.count("delete") == 3  # 2 + 2 + 1: one short transaction per batch
    assert _states(t) == {"failed": 1, "pending": 1}
    status = t.indexing_status()
    assert (status.done, status.failed, status.pending) == (0, 1, 1)
    assert status.failures[0]["item_id"] == str(failed)

    # A retried failure (and the pending job) is pruned once it is done, like any job.
    assert store.run_maintenance(t.tenant_id, now=later).pruned_index_jobs == 0
    _set_state(t, failed, "pending")
    t.wait_for_indexing(timeout_seconds=60)
    assert _states(t) == {"done": 2}
    assert store.run_maintenance(t.tenant_id, now=later + timedelta(minutes=10)).pruned_index_jobs == 2
    assert _states(t) == {}
    assert t.get_memory(pending) is not None and t.get_memory(failed) is not None  # jobs go, items stay


def test_all_tenants_and_the_retention_setting(empty_database_url: str) -> None:
    migrate.upgrade(Settings(database_url=empty_database_url))
    with MnemoStore(empty_database_url, index_jobs_retention_hours=1) as store:
        first, _, _ = _tenant_with_jobs(store, done=3)
        second, _, _ = _tenant_with_jobs(store, done=2)
        soon = datetime.now(UTC) + timedelta(minutes=30)
        assert store.run_maintenance(now=soon).pruned_index_jobs == 0
        report = store.run_maintenance(now=soon + timedelta(hours=1), batch_size=4)
        # The second tenant's wait_for_indexing also did the first's pending job (the worker serves every tenant).
        assert report.pruned_index_jobs == 4 + 2
        assert len(report.tenants) == 2 and not report.failed
        assert (_states(first), _states(second)) == ({"failed": 1}, {"failed": 1, "pending": 1})


def test_maintenance_command_reports_pruned_jobs(database_url: str) -> None:
    with MnemoStore(database_url) as store:
        t, _, _ = _tenant_with_jobs(store, done=3)
        name = store.get_tenant_or_raise(t.tenant_id).name
    runner = CliRunner()
    base = ["--database-url", database_url, "maintenance", "--tenant", name]
    kept = runner.invoke(app, base)
    assert kept.exit_code == 0, kept.output
    assert "0 index jobs done more than 24 h ago were pruned." in kept.stdout
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    with t._tx(write=True) as uow:  # jobs finished two days ago (their lease ended then too)
        uow.connection.execute(
            sa.update(index_jobs)
            .where(index_jobs.c.tenant_id == t.tenant_id)
            .values(updated_at=two_days_ago, next_attempt_at=two_days_ago)
        )
    dry = runner.invoke(app, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "3 index jobs done more than 24 h ago would be pruned." in dry.stdout
    done = runner.invoke(app, [*base, "--batch-size", "2"], env={"MNEMOSTORE_INDEX_JOBS_RETENTION_HOURS": "72"})
    assert done.exit_code == 0, done.output
    assert "0 index jobs done more than 72 h ago were pruned." in done.stdout
    done = runner.invoke(app, [*base, "--batch-size", "2"])
    assert done.exit_code == 0, done.output
    assert "3 index jobs done more than 24 h ago were pruned." in done.stdout
    assert _states(t) == {"failed": 1, "pending": 1}


def test_a_job_is_kept_until_its_lease_ended(database_url: str) -> None:
    """Pruning reads the queue index (state, next_attempt_at): a done job goes once its retention has passed and
    its last lease (``index_lease_seconds``, set when it was claimed) has ended, so at most one lease late."""
    with MnemoStore(database_url, index_jobs_retention_hours=0) as store:
        t, _, _ = _tenant_with_jobs(store, done=2)
        now = datetime.now(UTC)
        assert store.run_maintenance(t.tenant_id, now=now).pruned_index_jobs == 0
        lease = timedelta(seconds=store.settings.index_lease_seconds)
        assert store.run_maintenance(t.tenant_id, now=now + lease + timedelta(seconds=5)).pruned_index_jobs == 2
