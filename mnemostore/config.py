"""Settings, read once from the environment (``MNEMOSTORE_*``) or passed in by the caller.

One pydantic-settings class holds every knob so that the CLI, the HTTP service and the Python API agree on what a
setting means. Database URLs are normalised here, in one place: ``postgres://`` and ``postgresql://`` become the
psycopg 3 dialect, and a bare path becomes an SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mnemostore.errors import ConfigurationError

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "normalize_database_url"]

DEFAULT_DATABASE_URL = "sqlite:///mnemostore.db"


def normalize_database_url(url: str) -> str:
    """Return ``url`` in the form SQLAlchemy's sync engine wants, or raise ConfigurationError."""
    url = url.strip()
    if not url:
        raise ConfigurationError("MNEMOSTORE_DATABASE_URL is empty: set it to sqlite:///path.db or postgresql://…")
    scheme, sep, rest = url.partition("://")
    if not sep:
        # A bare path is the friendliest way to name an SQLite file.
        return f"sqlite:///{Path(url).expanduser()}"
    scheme = scheme.lower()
    if scheme in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgresql+asyncpg"}:
        return f"postgresql+psycopg://{rest}"
    if scheme in {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}:
        return f"sqlite://{rest}"
    raise ConfigurationError(
        f"MNEMOSTORE_DATABASE_URL has scheme {scheme!r}; mnemostore supports sqlite:///path.db "
        "and postgresql://user@host/db"
    )


class Settings(BaseSettings):
    """Configuration of one store. Environment variables win over defaults; arguments win over both."""

    model_config = SettingsConfigDict(env_prefix="MNEMOSTORE_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("MNEMOSTORE_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="sqlite:///path.db (embedded default) or postgresql://user@host:port/db",
    )
    pool_size: int = Field(default=10, ge=1, description="PostgreSQL connections kept open")
    max_overflow: int = Field(default=20, ge=0, description="extra PostgreSQL connections under load")
    pool_timeout: float = Field(default=30.0, gt=0, description="seconds to wait for a pooled connection")
    pool_recycle: int = Field(default=1800, description="seconds after which a connection is replaced")
    pool_pre_ping: bool = Field(default=True, description="test connections before use")
    connect_timeout: int = Field(default=10, ge=1, description="seconds to wait for the server to answer")
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0, description="how long SQLite waits for a lock")
    pg_app_role: str = Field(
        default="mnemostore_app",
        description="role without BYPASSRLS that the store switches to, so row-level security applies",
    )
    max_content_bytes: int = Field(default=1_000_000, ge=1, description="largest message or chunk, UTF-8")
    max_metadata_bytes: int = Field(default=64_000, ge=2, description="largest metadata object, as JSON")

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_database_url(value)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def async_database_url(self) -> str:
        """The URL for the async engine (same database, async driver)."""
        if self.is_sqlite:
            return "sqlite+aiosqlite" + self.database_url[len("sqlite") :]
        return self.database_url

    def check_driver(self) -> None:
        """Raise ConfigurationError naming the extra to install when the database driver is missing."""
        if self.is_postgres:
            try:
                import psycopg  # noqa: F401
            except ImportError as error:
                raise ConfigurationError(
                    "MNEMOSTORE_DATABASE_URL points at PostgreSQL but psycopg is not installed: "
                    "pip install 'mnemostore[postgres]'"
                ) from error

    def redacted_url(self) -> str:
        """The database URL without its password, for messages and logs."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)
