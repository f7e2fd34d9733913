"""``mnemostore analytics``: usage numbers from incremental Parquet snapshots, with DuckDB.

Needs the ``analytics`` extra (duckdb, pyarrow, matplotlib); without it the command names the package to
install. See ``mnemostore.ops.analytics`` for what is measured and how snapshots stay incremental.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ._shared import open_store, out, resolve_tenant, settings_from

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.ops.analytics import AnalyticsResult

__all__ = ["analytics"]

_TITLES = {
    "daily_activity": "Messages and active users per day",
    "models": "Tokens and estimated cost per model",
    "conversations": "Conversations",
    "tools": "Tools: success rate and latency (ms)",
    "memory_growth": "Memories created per tier per day (total: running)",
}


def analytics(
    ctx: typer.Context,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", metavar="TENANT", show_default=False, help="A tenant id or name. Default: all."),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            formats=["%Y-%m-%d"],
            metavar="YYYY-MM-DD",
            show_default=False,
            help="Only activity on or after this day (UTC).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            show_default=False,
            help="Write PNG charts and report.html here, and keep the snapshot in DIR/snapshot. "
            "Default: print only, snapshot in the user cache folder.",
        ),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Rebuild the snapshot from scratch.")] = False,
) -> None:
    """Messages and active users per day, tokens and cost per model, conversation length, tool success and
    latency percentiles, memory growth per tier: computed by DuckDB from Parquet snapshots of the database,
    which each run extends with only the rows added since the last one.
    """
    from mnemostore.ops.analytics import Analytics, default_snapshot_dir, require
    from mnemostore.ops.analytics_report import write_report

    for module in ("duckdb", "pyarrow", *(("matplotlib",) if out_dir is not None else ())):
        require(module)
    settings = settings_from(ctx)
    tenant_id = None
    if tenant is not None:
        with open_store(settings) as store:
            tenant_id = resolve_tenant(store, tenant).id
    snapshot_dir = out_dir / "snapshot" if out_dir is not None else default_snapshot_dir(settings)
    result = Analytics(settings, snapshot_dir=snapshot_dir).run(
        tenant_id=tenant_id, since=since.date() if since is not None else None, full=full
    )
    _print(result)
    if out_dir is not None:
        files = write_report(result, out_dir)
        out.print(f"Wrote {len(files) - 1} charts and {files[-1]}", markup=False)


def _print(result: AnalyticsResult) -> None:
    from mnemostore.ops.analytics_report import format_value

    read = ", ".join(f"{s.table} +{s.rows_read:,} ({s.mode})" for s in result.snapshot)
    out.print(f"Snapshot: {read}", markup=False, style="dim")
    for snap in result.snapshot:
        if snap.reason:
            out.print(f"  {snap.table} was read from scratch: {snap.reason}", markup=False, style="dim")
    for name, table in result.tables().items():
        rich_table = Table(title=_TITLES[name], title_justify="left")
        for column in table.column_names:
            rich_table.add_column(column, justify="left" if column in _TEXT_COLUMNS else "right", overflow="fold")
        rows: list[dict[str, Any]] = table.to_pylist()
        for row in rows:
            rich_table.add_row(*(Text(format_value(row[c])) for c in table.column_names))
        if not rows:
            rich_table.add_row(*(["-"] * len(table.column_names)))
        out.print(rich_table)


_TEXT_COLUMNS = {"day", "model", "tool", "tier", "priced_as"}
