"""Scratch databases: a new, empty database beside a store's, for checking that an archive restores, then gone.

SQLite: a file in a hidden temporary folder beside the archives (a scratch copy is as big as the data, so it goes
where the archives have room, not to a ``/tmp`` that may be memory). PostgreSQL: a database on the same server,
``mnemostore_verify_<random>``, created and dropped by the store's own login, which therefore needs ``CREATEDB``.

Synchronous, like the migrations: creating and dropping a database is a few statements, not a hot path.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mnemostore.config import Settings
from mnemostore.errors import BackupVerificationFailed

__all__ = ["Scratch", "create_scratch", "drop_scratch"]


@dataclass(frozen=True, slots=True)
class Scratch:
    """A scratch database: the settings that open it, and what removes it (a folder, or a database's name)."""

    settings: Settings
    folder: Path | None = None
    database: str | None = None


def create_scratch(settings: Settings, *, near: Path) -> Scratch:
    """A new empty database (no schema yet) on the backend of ``settings``; SQLite's goes in a folder in ``near``.

    The scratch settings keep everything of ``settings`` (keys included: sealed rows stay sealed) but Redis: the
    scratch store must not touch the live store's cache.
    """
    common = {"redis_url": None, "indexer_autostart": False}
    if settings.is_sqlite:
        try:
            near.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=".mnemostore-verify-", dir=near))
        except OSError as error:
            raise BackupVerificationFailed(
                f"cannot make a scratch database in {near} ({error}): free some space there or fix its permissions"
            ) from error
        url = f"sqlite:///{folder / 'scratch.db'}"
        return Scratch(settings.model_copy(update={**common, "database_url": url}), folder=folder)
    name = f"mnemostore_verify_{uuid.uuid4().hex[:12]}"
    _run(settings, f'CREATE DATABASE "{name}"', doing=f"create the scratch database {name}")
    update = {**common, "database_url": _on(settings.database_url, name)}
    if settings.admin_database_url is not None:
        update["admin_database_url"] = _on(settings.admin_database_url, name)
    return Scratch(settings.model_copy(update=update), database=name)


def drop_scratch(scratch: Scratch, origin: Settings) -> None:
    """Remove the scratch database (``origin``: the settings it was made from, whose login drops it)."""
    if scratch.folder is not None:
        shutil.rmtree(scratch.folder, ignore_errors=True)
    if scratch.database is not None:
        statement = f'DROP DATABASE IF EXISTS "{scratch.database}" WITH (FORCE)'
        _run(origin, statement, doing=f"drop the scratch database {scratch.database} (drop it by hand)")


def _on(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _run(settings: Settings, statement: str, *, doing: str) -> None:
    """One statement outside any transaction (CREATE / DROP DATABASE cannot run in one), on the store's server."""
    engine = sa.create_engine(settings.database_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    except sa.exc.DBAPIError as error:
        cause = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise BackupVerificationFailed(
            f"--verify could not {doing} on {settings.redacted_url()} ({cause}): the database login needs CREATEDB "
            "(ALTER ROLE … CREATEDB), or back up without --verify and restore the archive elsewhere to check it"
        ) from error
    finally:
        engine.dispose()
