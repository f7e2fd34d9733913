"""``mnemostore health``: is this store usable, and if not, what to do.

The table goes to stdout; each failing check adds one ``fail: <check>: …`` line on stderr saying what to do,
and the exit status is 1 when any check failed (warnings keep it 0). ``--json`` prints the report as one JSON
document instead, for monitors and scripts.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from ._shared import err, open_store, out, settings_from

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.ops import HealthReport

__all__ = ["health"]

_STYLES = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}  # by HealthStatus value


def health(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as a JSON document.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.1,
            metavar="SECONDS",
            show_default=False,
            help="How long each check may take. Default: MNEMOSTORE_HEALTH_TIMEOUT_SECONDS (5).",
        ),
    ] = None,
) -> None:
    """Check the database (reachable, latency, schema), Redis, disk space, pgvector, the embedder and encryption.

    Checks run concurrently, each with a timeout. Exits 1 when a check fails, with one line per failure saying
    what to do; warnings (Redis down, low disk, encryption off) leave the exit status at 0.
    """
    settings = settings_from(ctx)
    with open_store(settings) as store:
        report = store.health(timeout_seconds=timeout)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print(report)
    if not report.healthy:
        raise typer.Exit(code=1)


def _print(report: HealthReport) -> None:
    table = Table(title=f"Health of {report.database}", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("latency", justify="right", no_wrap=True)
    table.add_column("summary")
    for check in report.checks:
        latency = f"{check.latency_ms:.1f} ms" if check.latency_ms is not None else ""
        status = Text(check.status.value, style=_STYLES[check.status.value])
        table.add_row(check.name, status, latency, Text(check.summary))
    out.print(table)
    for note in report.notes:
        out.print(f"note: {note}", style="dim", markup=False)
    for check in report.warnings:
        out.print(f"warn: {check.name}: {check.action}", style="yellow", markup=False)
    if report.healthy:
        out.print("healthy", style="green")
    for check in report.failing:
        err.print(f"fail: {check.name}: {check.summary}: {check.action}", style="red", markup=False)
