"""The one wording of "the database cannot be used": a file for SQLite, a server for PostgreSQL."""

from __future__ import annotations

from mnemostore.config import Settings
from mnemostore.errors import BackendUnavailable

__all__ = ["database_unreachable"]


def database_unreachable(settings: Settings, detail: str) -> BackendUnavailable:
    """The error for a database that cannot be opened or reached; ``detail`` is the driver's first line."""
    if settings.is_sqlite:
        return BackendUnavailable(
            f"cannot use the SQLite file of {settings.redacted_url()}: {detail}. Check that its folder exists and "
            "is writable, that the disk has room and that the file is a database; nothing was written."
        )
    return BackendUnavailable(
        f"cannot use the database at {settings.redacted_url()}: {detail}. "
        "Check that the server is running and the URL is right; nothing was written."
    )
