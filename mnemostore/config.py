"""Settings, read once from the environment (``MNEMOSTORE_*``) or passed in by the caller.

One pydantic-settings class holds every knob so that the CLI, the HTTP service and the Python API agree on what a
setting means. Database URLs are normalised here, in one place: ``postgres://`` and ``postgresql://`` become the
psycopg 3 dialect, and a bare path becomes an SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from typing import Any

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

    # -- cache (mnemostore.cache): Redis when a URL is set, else an in-process cache for this process only -----
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MNEMOSTORE_REDIS_URL", "REDIS_URL", "redis_url"),
        description="redis://host:6379/0; unset: in-process cache (one process per database)",
    )
    cache_enabled: bool = Field(
        default=True,
        description="serve history and lookups from the cache; off: always read the database "
        "(sessions, rate limits, presence, flags and events still work)",
    )
    cache_key_prefix: str = Field(
        default="mns", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Redis key namespace"
    )
    recent_context_size: int = Field(default=20, ge=0, le=1000, description="messages per conversation kept hot")
    recent_context_ttl_seconds: int = Field(
        default=900, ge=1, description="life of a cached history window after its last write or refill"
    )
    cache_ttl_seconds: int = Field(default=300, ge=1, description="life of cached users, identities and configs")
    session_ttl_seconds: int = Field(default=1800, ge=1, description="sliding life of a channel session")
    presence_ttl_seconds: int = Field(default=300, ge=1, description="a user is active this long after activity")
    redis_timeout_ms: int = Field(default=100, ge=1, description="per-command Redis timeout before degrading")
    redis_connect_timeout_ms: int = Field(default=200, ge=1, description="Redis connect timeout")
    breaker_cooldown_seconds: float = Field(
        default=2.0, gt=0, description="after a Redis failure, how long to serve from the database before probing"
    )
    cache_dirty_max: int = Field(
        default=10_000, ge=1, description="keys remembered for invalidation while Redis is down; beyond: flush"
    )
    local_cache_max_keys: int = Field(default=100_000, ge=100, description="bound of the in-process cache")
    default_rate_limits: dict[str, Any] = Field(
        default_factory=dict,
        description='limits when neither tenant nor channel config sets one, e.g. {"user": "60/minute"}',
    )
    feature_flags: dict[str, Any] = Field(
        default_factory=dict, description='global feature flags, e.g. {"beta": true, "model": {"a": 50, "b": 50}}'
    )

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _normalize_redis(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme = value.partition("://")[0].lower()
        if scheme not in {"redis", "rediss", "unix"}:
            raise ConfigurationError(
                f"MNEMOSTORE_REDIS_URL has scheme {scheme!r}: use redis://host:6379/0, rediss://… or unix:///path"
            )
        return value

    def redacted_redis_url(self) -> str | None:
        """The Redis URL without its password, for messages, logs and health."""
        if self.redis_url is None:
            return None
        scheme, _, rest = self.redis_url.partition("://")
        auth, at, host = rest.rpartition("@")
        return f"{scheme}://{'***@' if at else ''}{host}"

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
