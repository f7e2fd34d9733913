"""``mnemostore maintenance``: apply every tenant's retention (``MnemoStore.run_maintenance``).

Purges expired memories, archives active conversations idle longer than the tenant config's
``retention.archive_after_days`` and deletes archived ones idle longer than
``retention.delete_archived_after_days`` (see ``mnemostore.memory.RetentionPolicy``), moves memories between
tiers by recall, importance and age (``memory_lifecycle``: ``MemoryLifecyclePolicy``), prunes agent checkpoints
(``checkpoint_retention``: ``CheckpointRetentionPolicy``), and deletes the search outbox's jobs done longer ago
than ``MNEMOSTORE_INDEX_JOBS_RETENTION_HOURS`` (failed ones stay, for ``mnemostore health`` and ``reindex``).
Run it from cron or a scheduler; it is safe to interrupt and run again.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ._shared import err, open_store, out, resolve_tenant, settings_from

__all__ = ["maintenance"]


def maintenance(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="TENANT", help="Only this tenant (id or name).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be done; change nothing.")] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10_000, help="Rows changed per transaction.")
    ] = 500,
) -> None:
    """Purge expired memories, archive or delete conversations past each tenant's retention, move memory tiers,
    prune checkpoints and done index jobs."""
    settings = settings_from(ctx)
    with open_store(settings) as store:
        found = resolve_tenant(store, tenant) if tenant is not None else None
        report = store.run_maintenance(found.id if found else None, dry_run=dry_run, batch_size=batch_size)
        names = {found.id: found.name} if found else {}
        if not found:
            cursor = None
            while True:
                page = store.list_tenants(limit=500, cursor=cursor)
                names.update({t.id: t.name for t in page.items})
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
    verb = "would be" if dry_run else "were"
    table = Table(title="Maintenance (dry run)" if dry_run else "Maintenance", title_justify="left")
    table.add_column("tenant", no_wrap=True)
    table.add_column("expired memories purged", justify="right")
    table.add_column("conversations archived", justify="right")
    table.add_column("conversations deleted", justify="right")
    for entry in report.tenants:
        if entry.error is None:
            table.add_row(
                names.get(entry.tenant_id, str(entry.tenant_id)),
                f"{entry.expired_memories:,}",
                f"{entry.archived_conversations:,}",
                f"{entry.deleted_conversations:,}",
            )
    table.add_row(
        "total",
        f"{report.expired_memories:,}",
        f"{report.archived_conversations:,}",
        f"{report.deleted_conversations:,}",
    )
    out.print(table)
    out.print(
        f"{report.expired_memories:,} expired memories {verb} purged, {report.archived_conversations:,} "
        f"conversations {verb} archived and {report.deleted_conversations:,} {verb} deleted.",
        markup=False,
    )
    out.print(
        f"{report.promoted_memories:,} memories {verb} promoted, {report.demoted_memories:,} demoted and "
        f"{report.retired_memories:,} retired; {report.pruned_checkpoints:,} checkpoints {verb} pruned.",
        markup=False,
    )
    out.print(
        f"{report.pruned_index_jobs:,} index jobs done more than "
        f"{settings.index_jobs_retention_hours:g} h ago {verb} pruned.",
        markup=False,
    )
    for entry in report.failed:
        err.print(f"error: tenant {names.get(entry.tenant_id, entry.tenant_id)} skipped: {entry.error}", markup=False)
    if report.failed:
        raise typer.Exit(1)
