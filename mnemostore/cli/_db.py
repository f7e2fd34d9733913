"""``mnemostore init`` and ``mnemostore db …``: create the database and move its schema between revisions.

Migrating is always this deliberate step: a store on an older schema refuses to work and names the command here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from ._shared import ensure_sqlite_folder, open_store, out, settings_from

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.ops.migrate import MigrationStatus

__all__ = ["app", "init"]

app = typer.Typer(
    name="db",
    help="Inspect and migrate the database schema.",
    no_args_is_help=True,
)


def _describe(revision: str | None) -> str:
    return revision if revision is not None else "nothing (empty database)"


def init(ctx: typer.Context) -> None:
    """Create the database (an SQLite file unless --database-url says otherwise) and upgrade it to the newest schema.

    Safe to run again: an up-to-date database is left as it is.
    """
    from mnemostore.ops import migrate

    settings = settings_from(ctx)
    ensure_sqlite_folder(settings)
    if migrate.create_database(settings):
        out.print(f"Created   {settings.redacted_url()}", markup=False)
    with open_store(settings, create=True) as store:
        before = store.get_migration_status()
        store.migrate()
        after = store.get_migration_status()
    out.print(f"Database  {settings.redacted_url()}")
    if before.current == after.current:
        out.print(f"Schema    {after.current} (head), already up to date")
    else:
        out.print(f"Schema    {after.current} (head), upgraded from {_describe(before.current)}")


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision; 'head' is the newest this version knows.")] = "head",
) -> None:
    """Upgrade the schema to REVISION (default: the newest), applying each pending migration in order."""
    settings = settings_from(ctx)
    with open_store(settings, create=True) as store:
        before = store.get_migration_status()
        store.migrate(revision)
        after = store.get_migration_status()
    if before.current == after.current:
        out.print(f"{settings.redacted_url()} is already at {_describe(after.current)}: nothing to do")
    else:
        out.print(f"Upgraded {settings.redacted_url()} from {_describe(before.current)} to {after.current}")


def _print_status(url: str, status: MigrationStatus) -> None:
    out.print(f"Database  {url}")
    out.print(f"Current   {_describe(status.current)}")
    out.print(f"Head      {status.head}")
    if status.up_to_date:
        out.print("[green]Up to date.[/]")
        return
    out.print(f"[yellow]Behind by {len(status.pending)} migration(s)[/]; run `mnemostore db upgrade` to apply:")
    for rev in status.pending:
        out.print(f"  {rev.revision}  {rev.message}", markup=False)


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the schema revision of the database, the newest one, and what is pending. Exits 1 when behind."""
    settings = settings_from(ctx)
    with open_store(settings) as store:
        current = store.get_migration_status()
    _print_status(settings.redacted_url(), current)
    if not current.up_to_date:
        raise typer.Exit(code=1)


@app.command()
def rollback(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Revision to go back to; 'base' removes every mnemostore table.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Downgrade the schema to REVISION. Tables and columns added after it are dropped with their data."""
    settings = settings_from(ctx)
    with open_store(settings) as store:
        before = store.get_migration_status()
        if not yes:
            typer.confirm(
                f"Roll {settings.redacted_url()} back from {_describe(before.current)} to {revision}? "
                "Data in the tables dropped on the way is deleted",
                abort=True,
            )
        store.rollback_to_version(revision)
        after = store.get_migration_status()
    out.print(f"Rolled {settings.redacted_url()} back from {_describe(before.current)} to {_describe(after.current)}")


@app.command()
def history(ctx: typer.Context) -> None:
    """List every schema revision this version of mnemostore knows, oldest first, and which are applied."""
    settings = settings_from(ctx)
    with open_store(settings) as store:
        current = store.get_migration_status()
    from mnemostore.ops import migrate

    revisions = migrate.history()
    applied = {r.revision for r in revisions} - {r.revision for r in current.pending}
    table = Table(title=f"Schema history of {settings.redacted_url()}", title_justify="left")
    table.add_column("revision", no_wrap=True)
    table.add_column("parent", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("description")
    for rev in revisions:
        state = "applied" if rev.revision in applied else "pending"
        if rev.revision == current.current:
            state = "current"
        table.add_row(rev.revision, rev.down_revision or "-", state, Text(rev.message))
    out.print(table)
