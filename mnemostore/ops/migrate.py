"""Schema migrations with Alembic, driven from Python and the CLI (``mnemostore db …``).

Migrating is always a deliberate act (``mnemostore db upgrade`` or ``store.migrate()``), never a side effect of
importing or opening a store: a store on an old schema refuses to work and says which command to run.

Alembic is synchronous, so this module is too; the async store runs it in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc

from mnemostore.config import Settings
from mnemostore.errors import MigrationError
from mnemostore.store import database_unreachable

__all__ = [
    "MigrationStatus",
    "Revision",
    "alembic_config",
    "create_database",
    "downgrade",
    "get_migration_status",
    "head_revision",
    "history",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@dataclass(frozen=True, slots=True)
class Revision:
    revision: str
    down_revision: str | None
    message: str


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    current: str | None
    head: str
    pending: list[Revision]

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    config.attributes["settings"] = settings
    return config


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head


def history() -> list[Revision]:
    """Every revision, oldest first."""
    revisions = [
        Revision(s.revision, s.down_revision if isinstance(s.down_revision, str) else None, s.doc or "")
        for s in _scripts().walk_revisions()
    ]
    return list(reversed(revisions))


def _engine(settings: Settings) -> sa.Engine:
    settings.check_driver()
    connect_args = {"connect_timeout": settings.connect_timeout} if settings.is_postgres else {}
    return sa.create_engine(settings.database_url, connect_args=connect_args, poolclass=sa.NullPool)


def _current(settings: Settings) -> str | None:
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except exc.OperationalError as error:
        raise database_unreachable(settings, str(error.orig).strip().splitlines()[0]) from error
    finally:
        engine.dispose()


def get_migration_status(settings: Settings) -> MigrationStatus:
    current = _current(settings)
    all_revisions = history()
    ids = [r.revision for r in all_revisions]
    start = ids.index(current) + 1 if current in ids else 0
    if current is not None and current not in ids:
        raise MigrationError(
            f"the database is at revision {current}, which this version of mnemostore does not know: "
            "upgrade mnemostore, or restore a backup made by this version"
        )
    return MigrationStatus(current=current, head=ids[-1], pending=all_revisions[start:])


def _run(settings: Settings, action: str, revision: str) -> None:
    _current(settings)  # fail early, and clearly, when the server is down
    try:
        if action == "upgrade":
            command.upgrade(alembic_config(settings), revision)
        else:
            command.downgrade(alembic_config(settings), revision)
    except exc.DBAPIError as error:
        message = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise MigrationError(f"{action} to {revision} failed and was rolled back: {message}") from error
    except Exception as error:  # Alembic reports unknown revisions with its own exception types
        if type(error).__module__.startswith("alembic"):
            raise MigrationError(f"{action} to {revision!r} failed: {error}") from error
        raise


def create_database(settings: Settings) -> bool:
    """PostgreSQL: create the URL's database when the server has none of that name; returns whether it did.

    SQLite creates its file by itself, so this is a no-op there. The database is created from the server's
    ``postgres`` database with the URL's credentials; a role that may not create databases gets the exact
    ``createdb`` command to run instead.
    """
    if not settings.is_postgres:
        return False
    url = sa.make_url(settings.database_url)
    name = url.database or ""
    probe = _engine(settings)
    try:
        with probe.connect():
            return False
    except exc.OperationalError as error:
        if f'database "{name}" does not exist' not in str(error.orig):
            raise database_unreachable(settings, str(error.orig).strip().splitlines()[0]) from error
    finally:
        probe.dispose()
    admin = sa.create_engine(
        url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": settings.connect_timeout},
        poolclass=sa.NullPool,
    )
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {conn.dialect.identifier_preparer.quote(name)}"))
    except exc.DBAPIError as error:
        options = (("-h", url.host), ("-p", url.port), ("-U", url.username))
        command = " ".join(["createdb", *(f"{flag} {value}" for flag, value in options if value), name])
        reason = str(error.orig).strip().splitlines()[0]
        raise MigrationError(
            f"the database {name!r} does not exist and could not be created ({reason}): create it with "
            f"`{command}`, then run `mnemostore init` again"
        ) from error
    finally:
        admin.dispose()
    return True


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (default: the newest)."""
    _run(settings, "upgrade", revision)


def downgrade(settings: Settings, revision: str) -> None:
    """Take the schema back to ``revision`` (``base`` removes every table mnemostore made)."""
    _run(settings, "downgrade", revision)
