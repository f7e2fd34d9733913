"""What every command group shares: the store the global options point at, output, and error reporting.

Errors are part of the interface. Every ``MnemostoreError`` already says what happened and what to do, so the CLI
prints it as one red ``error: …`` line on stderr and exits with status 1 instead of a traceback; a missing
optional dependency is reported the same way, naming the extra to install. ``CliGroup`` does this once, around
the whole command tree, so no command needs its own ``try``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from mnemostore.domain import Tenant
from mnemostore.errors import ConfigurationError, MnemostoreError, TenantNotFound

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.config import Settings
    from mnemostore.service.store import MnemoStore

__all__ = [
    "CliGroup",
    "CliState",
    "ensure_sqlite_folder",
    "err",
    "fail",
    "missing_extra_message",
    "open_store",
    "out",
    "resolve_tenant",
    "settings_from",
    "sqlite_file",
    "url_source",
]

# Created once; Rich looks up sys.stdout/sys.stderr at each write, so test runners that swap them still capture.
# Plain lines never wrap mid-word (they may be piped or grepped); tables still fit the terminal width.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# Top-level module of an optional dependency -> the extra that installs it.
_EXTRAS = {
    "psycopg": ("PostgreSQL", "postgres"),
    "psycopg_binary": ("PostgreSQL", "postgres"),
    "redis": ("Redis", "redis"),
    "sentence_transformers": ("embeddings", "embeddings"),
    "numpy": ("embeddings", "embeddings"),
    "duckdb": ("analytics", "analytics"),
    "pyarrow": ("analytics", "analytics"),
    "matplotlib": ("analytics", "analytics"),
    "fastapi": ("the HTTP service", "server"),
    "starlette": ("the HTTP service", "server"),
    "uvicorn": ("the HTTP service", "server"),
    "prometheus_client": ("the HTTP service", "server"),
    "fastapi_offline": ("the HTTP service", "server"),
    "mcp": ("the MCP server", "mcp"),
    "mcp_types": ("the MCP server", "mcp"),
}


def fail(message: str) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with status 1."""
    err.print(f"error: {message}", style="red", markup=False)
    raise typer.Exit(code=1)


def missing_extra_message(error: ImportError) -> str | None:
    """The install hint for an optional dependency that failed to import, or None if it is not one of ours."""
    module = (error.name or "").partition(".")[0]
    if module not in _EXTRAS:
        return None
    feature, extra = _EXTRAS[module]
    return f"{feature} support needs the {module} package, which is not installed: pip install 'mnemostore[{extra}]'"


class CliGroup(TyperGroup):
    """The root command group: turns the library's errors into one-line messages and exit status 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MnemostoreError as error:
            fail(str(error))
        except ImportError as error:
            hint = missing_extra_message(error)
            if hint is None:
                raise
            fail(hint)


@dataclass(slots=True)
class CliState:
    """Global options, kept on the click context; nothing is opened until a command needs it."""

    database_url: str | None = None


# Where the URL of the command's settings came from (set by settings_from), for the messages of open_store.
_URL_SOURCE: ContextVar[str] = ContextVar("mnemostore_cli_url_source", default="the database URL")


def url_source(ctx: typer.Context) -> str:
    """Where the database URL comes from, for messages: the flag, a variable, or the default."""
    state = ctx.find_object(CliState) or CliState()
    if state.database_url:
        return "--database-url"
    for variable in ("MNEMOSTORE_DATABASE_URL", "DATABASE_URL"):
        if os.environ.get(variable, "").strip():
            return variable
    return "the default, ./mnemostore.db"


def settings_from(ctx: typer.Context) -> Settings:
    """Settings from ``--database-url``, else MNEMOSTORE_DATABASE_URL / DATABASE_URL, else ./mnemostore.db."""
    from pydantic import ValidationError

    from mnemostore.config import Settings

    state = ctx.find_object(CliState) or CliState()
    _URL_SOURCE.set(url_source(ctx))
    try:
        return Settings(database_url=state.database_url) if state.database_url else Settings()
    except ConfigurationError as error:  # the database URL: say where it came from
        raise ConfigurationError(f"{_URL_SOURCE.get()}: {error}") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors())
        raise ConfigurationError(f"invalid setting ({problems}): fix the MNEMOSTORE_* environment variable") from None


def sqlite_file(settings: Settings) -> Path | None:
    """The file of an SQLite database (None for PostgreSQL, in-memory or ``file:`` URIs)."""
    if not settings.is_sqlite:
        return None
    from sqlalchemy.engine import make_url

    database = make_url(settings.database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


@contextmanager
def open_store(settings: Settings, *, create: bool = False) -> Iterator[MnemoStore]:
    """The sync store for ``settings`` (see ``settings_from``), closed when the block ends.

    Only commands that set up a database pass ``create``: any other command on an SQLite file that does not
    exist stops with a message, instead of leaving an empty file behind.
    """
    from mnemostore.service.store import MnemoStore

    path = sqlite_file(settings)
    if path is not None and not create and not path.exists():
        raise ConfigurationError(
            f"there is no database at {path} ({_URL_SOURCE.get()}): run `mnemostore init` to create it, or point "
            "--database-url (or MNEMOSTORE_DATABASE_URL) at an existing one"
        )
    # A command ends in seconds: an indexer started by its writes would hold its exit until the model loaded.
    store = MnemoStore(settings=settings.model_copy(update={"indexer_autostart": False}))
    try:
        yield store
    finally:
        store.close()


def ensure_sqlite_folder(settings: Settings) -> None:
    """SQLite creates a missing file but not its folder: make the folder, so a fresh path just works."""
    path = sqlite_file(settings)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def resolve_tenant(store: MnemoStore, ref: str) -> Tenant:
    """The tenant with id ``ref``, or else named ``ref``.

    Raises:
        TenantNotFound: neither an id nor a name matches.
    """
    try:
        tenant_id: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        tenant_id = None
    tenant = store.get_tenant(tenant_id) if tenant_id is not None else None
    if tenant is None:
        tenant = store.get_tenant_by_name(ref)
    if tenant is None:
        raise TenantNotFound(repr(ref), ": give a tenant id or name from `mnemostore tenant list`")
    return tenant
