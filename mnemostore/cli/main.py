"""The ``mnemostore`` command: assembles the command groups and holds the global options.

Each capability has its own module (``_db``, ``_tenant``, ``_demo``); this one only wires them together, so the
command tree can be read at a glance. Every command uses the sync facade ``MnemoStore``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mnemostore._version import __version__

from . import _analytics, _backup, _db, _demo, _health, _keys, _maintenance, _mcp, _search, _serve, _tenant
from ._shared import CliGroup, CliState

__all__ = ["app", "main"]

app = typer.Typer(
    name="mnemostore",
    cls=CliGroup,
    help="mnemostore: the persistence layer for AI assistants. Manage the database, tenants and API keys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold database passwords and API secrets
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mnemostore {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            show_default=False,
            help="sqlite:///path.db or postgresql://user@host:5432/db. Default: MNEMOSTORE_DATABASE_URL, "
            "then DATABASE_URL, then the SQLite file mnemostore.db in the current folder.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """mnemostore: the persistence layer for AI assistants. Manage the database, tenants and API keys."""
    ctx.obj = CliState(database_url=database_url)


app.command("init")(_db.init)
app.add_typer(_db.app)
app.add_typer(_tenant.app)
app.command("demo")(_demo.demo)
app.command("serve")(_serve.serve)
app.command("mcp")(_mcp.mcp_command)
app.command("health")(_health.health)
app.command("analytics")(_analytics.analytics)
app.command("rotate-keys")(_keys.rotate_keys)
app.command("maintenance")(_maintenance.maintenance)
app.command("worker")(_search.worker)
app.command("reindex")(_search.reindex)
for _command in (_backup.backup, _backup.restore, _backup.export, _backup.erase):
    app.command()(_command)


def main() -> None:
    """Entry point of the ``mnemostore`` script."""
    app()
