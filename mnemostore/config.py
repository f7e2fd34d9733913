"""Settings, read once from the environment (``MNEMOSTORE_*``) or passed in by the caller.

One pydantic-settings class holds every knob so that the CLI, the HTTP service and the Python API agree on what a
setting means. Database URLs are normalised here, in one place: ``postgres://`` and ``postgresql://`` become the
psycopg 3 dialect, and a bare path becomes an SQLite file.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mnemostore.errors import ConfigurationError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "EXAMPLE_MODEL_PRICES",
    "MAX_INTEGER",
    "MAX_JSON_DEPTH",
    "Settings",
    "normalize_database_url",
]

DEFAULT_DATABASE_URL = "sqlite:///mnemostore.db"

MAX_INTEGER: Final = 2**63 - 1
"""The largest magnitude of any integer the store accepts: every integer, in a column or inside JSON (metadata,
states, filters), lies in ``-MAX_INTEGER .. MAX_INTEGER``. SQLite stores and compares integers as signed 64-bit
(a larger one cannot be bound at all, and inside JSON it is read back as an inexact REAL), while PostgreSQL's
jsonb keeps it exact: refusing it everywhere keeps the two backends answering the same."""

MAX_JSON_DEPTH: Final = 100
"""The deepest nesting the store accepts in a JSON document (metadata, states, tool results, filters, HTTP
bodies): ``{"a": 1}`` is 1 deep, ``{"a": [1]}`` 2. Python's parser gives up near 1,000 levels and SQLite's JSON
functions at 1,000; 100 leaves room for any real document and keeps every layer's recursion far from its limits."""

# Model -> (prompt, completion) USD per 1,000 tokens. Examples only, to make cost estimates show something out
# of the box: prices change, so set MNEMOSTORE_MODEL_PRICES to yours ('{"gpt-4o": [0.0025, 0.01]}').
EXAMPLE_MODEL_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (0.0025, 0.01),
    "gpt-4o-mini": (0.00015, 0.0006),
    "claude-3-5-sonnet": (0.003, 0.015),
    "claude-3-5-haiku": (0.0008, 0.004),
}

_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional."""
    text = text.strip().replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _split_list(value: Any) -> Any:
    """A list from the environment: a JSON array, or comma-separated items."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


URL_FORMS: Final = "sqlite:///path.db (or a file path ending in .db), or postgresql://user@host:5432/db"
SQLITE_SUFFIXES: Final = (".db", ".sqlite", ".sqlite3")


def normalize_database_url(url: str) -> str:
    """Return ``url`` in the form SQLAlchemy's sync engine wants, or raise ConfigurationError."""
    url = url.strip()
    if not url:
        raise ConfigurationError(f"the database URL is empty: use {URL_FORMS}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        # A bare path is the friendliest way to name an SQLite file; anything else is a typo, not a file to create.
        if not url.lower().endswith(SQLITE_SUFFIXES):
            raise ConfigurationError(f"the database URL {url!r} is neither a URL nor a .db file path: use {URL_FORMS}")
        return f"sqlite:///{Path(url).expanduser()}"
    scheme = scheme.lower()
    if scheme in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgresql+asyncpg"}:
        return f"postgresql+psycopg://{rest}"
    if scheme in {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}:
        return f"sqlite://{rest}"
    raise ConfigurationError(
        f"the database URL has scheme {scheme!r}, which mnemostore does not support: use {URL_FORMS}"
    )


class Settings(BaseSettings):
    """Configuration of one store. Environment variables win over defaults; arguments win over both.

    A variable set to the empty string counts as unset (the default applies), as ``VAR=`` left blank in an .env
    file means: an optional number or URL left empty is not an error.
    """

    model_config = SettingsConfigDict(
        env_prefix="MNEMOSTORE_", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("MNEMOSTORE_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="sqlite:///path.db (embedded default) or postgresql://user@host:port/db",
    )
    pool_size: int = Field(default=10, ge=1, description="PostgreSQL connections kept open")
    max_overflow: int = Field(default=20, ge=0, description="extra PostgreSQL connections under load")
    pool_timeout: float = Field(default=30.0, gt=0, description="seconds to wait for a pooled connection")
    pool_recycle: int = Field(default=1800, description="seconds after which a connection is replaced")
    pool_pre_ping: bool = Field(
        default=False,
        description=(
            "ping each connection before use (a round trip per transaction); off by default: connections the "
            "server closed are dropped without one, and a transaction whose first statement finds its connection "
            "dead is retried once on a new one"
        ),
    )
    connect_timeout: int = Field(default=10, ge=1, description="seconds to wait for the server to answer")
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0, description="how long SQLite waits for a lock")
    pg_app_role: str = Field(
        default="mnemostore_app",
        description="role without BYPASSRLS that the store switches to, so row-level security applies",
    )
    pg_admin_role: str = Field(
        default="mnemostore_admin",
        description="role whose row-level security policies see every tenant: admin work (tenants, the indexer "
        "across tenants, backups) runs as it, with SET LOCAL ROLE",
    )
    admin_database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of a login that may act as pg_admin_role, used for admin work only; unset: "
        "admin work switches role on the main connection, which only a login that may take both roles can do",
    )
    citus_distribute: str = Field(
        default="auto",
        pattern=r"^(auto|on|off)$",
        description="PostgreSQL: whether `mnemostore db upgrade` distributes the tables over a Citus cluster "
        "(migration 0013: tenant tables by tenant_id, co-located; tenants a reference table). auto: when the citus "
        "extension is installed in the database; on: the same, and an error without it; off: never",
    )
    admin_pool_size: int = Field(
        default=1, ge=1, description="connections kept open to admin_database_url (one more under load)"
    )
    max_content_bytes: int = Field(default=1_000_000, ge=1, description="largest message or chunk, UTF-8")
    max_metadata_bytes: int = Field(default=64_000, ge=2, description="largest metadata object, as JSON")

    # -- cache (mnemostore.cache): Redis when a URL is set, else an in-process cache for this process only -----
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MNEMOSTORE_REDIS_URL", "REDIS_URL", "redis_url"),
        description="redis://host:6379/0 (rediss:// for TLS, unix:///path), or a Redis Cluster by any of its nodes: "
        "redis+cluster://host:6379[,host:6379…] (rediss+cluster:// for TLS; needs redis-py 8); "
        "unset: in-process cache (one process per database)",
    )
    cache_enabled: bool = Field(
        default=True,
        description="serve history and lookups from the cache; off: always read the database "
        "(sessions, rate limits, presence, flags and events still work)",
    )
    cache_key_prefix: str = Field(
        default="mns", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Redis key namespace"
    )
    recent_context_size: int = Field(
        default=50,
        ge=0,
        le=1000,
        description="messages per conversation kept hot (the default history page is 50: it is served from them)",
    )
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

    # -- encryption at rest (mnemostore.store._crypto) ------------------------------------------------------------
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="key-id:base64 AES key (16, 24 or 32 bytes), comma-separated or a JSON list; the first "
        "encrypts new values, every one decrypts. Unset: sensitive fields are stored in clear",
    )
    blind_index_key: SecretStr | None = Field(
        default=None,
        description="base64 HMAC key (at least 16 bytes) of the email lookup hash; needed with encryption_keys, "
        "and kept when they rotate",
    )
    secret_metadata_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="message metadata keys whose values are encrypted (comma-separated)"
    )

    # -- memory operations (mnemostore.memory): near-duplicate detection on store_memory -------------------------
    memory_dedup: bool = Field(default=True, description="store_memory merges a near-duplicate of the same user")
    memory_dedup_threshold: float = Field(
        default=0.9, gt=0, le=1, description="cosine similarity from which two memories are the same (embedder)"
    )
    memory_dedup_jaccard: float = Field(
        default=0.8, gt=0, le=1, description="word-token Jaccard from which two memories are the same (no embedder)"
    )
    memory_dedup_candidates: int = Field(
        default=200, ge=1, le=10_000, description="newest memories of the user compared with a new one"
    )
    memory_dedup_embed_limit: int = Field(
        default=16,
        ge=0,
        le=10_000,
        description="not-yet-indexed candidates (the newest) that store_memory embeds to compare; older ones are "
        "compared by text",
    )

    memory_recall_tracking: bool = Field(
        default=True,
        description="retrieval and search count each memory they return (recall_count, last_recalled_at), one "
        "batched UPDATE per call; the memory lifecycle of run_maintenance promotes and demotes by these counts",
    )

    # -- tenants: what create_tenant gives a tenant whose caller names no quotas ---------------------------------
    default_max_users: int | None = Field(default=None, ge=0, le=MAX_INTEGER, description="new tenants' max_users")
    default_max_messages: int | None = Field(
        default=None, ge=0, le=MAX_INTEGER, description="new tenants' max_messages"
    )
    default_max_storage_bytes: int | None = Field(
        default=None, ge=0, le=MAX_INTEGER, description="new tenants' max_storage_bytes"
    )
    default_allowed_models: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="new tenants' allowed models (comma-separated or a JSON array; unset: any model)",
    )

    # -- search (mnemostore.search): embeddings, background indexing, vector and full-text retrieval ------------
    embedder: str = Field(
        default="sentence-transformers",
        pattern=r"^(sentence-transformers|openai|hashing|none)$",
        description="sentence-transformers (local all-MiniLM-L6-v2, needs the embeddings extra), openai (an "
        "OpenAI-compatible HTTP service), hashing (deterministic test vectors, NOT semantic) or none (full text only)",
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2", min_length=1, description="model name (or local path) of the embedder"
    )
    embedder_device: str = Field(
        default="cpu",
        pattern=r"^(cpu|cuda(:\d+)?|mps|auto)$",
        description="where sentence-transformers runs: cpu, cuda (or cuda:<n>), mps (Apple GPUs) or auto (cuda if "
        "available, else mps, else cpu); a device that is not there fails the model's load, naming this setting",
    )
    embedding_dimension: int | None = Field(
        default=None, ge=1, le=16_000, description="vector size; needed for openai models the store does not know"
    )
    embedding_batch_size: int = Field(default=64, ge=1, le=4096, description="texts per embedding call")
    embedding_base_url: str = Field(
        default="https://api.openai.com/v1", description="base URL of the OpenAI-compatible embeddings service"
    )
    embedding_api_key: SecretStr | None = Field(default=None, description="bearer key of the embeddings service")
    embedding_timeout_seconds: float = Field(default=30.0, gt=0, description="HTTP timeout of one embedding call")
    vector_backend: str = Field(
        default="auto",
        pattern=r"^(auto|hnsw|exact|milvus)$",
        description="SQLite vectors: hnsw (in-process hnswlib index rebuilt from the database), exact (numpy scan); "
        "auto: hnsw when hnswlib is installed; PostgreSQL uses pgvector. milvus (either database, needs the milvus "
        "extra): Milvus at milvus_uri answers vector queries, the embeddings table stays the durable copy",
    )
    milvus_uri: str = Field(
        default="./milvus.db",
        min_length=1,
        description="vector_backend=milvus: a local file path runs Milvus Lite in this process (one process per "
        "file); http://host:19530 (or https://) a Milvus server",
    )
    milvus_token: SecretStr | None = Field(
        default=None, description="vector_backend=milvus: the server's token (user:password, or an API key)"
    )
    milvus_collection_prefix: str = Field(
        default="mnemostore",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="vector_backend=milvus: start of the collections' names (one per embedding model and "
        "dimension), so several databases can share one Milvus",
    )
    milvus_timeout_seconds: float = Field(
        default=30.0, gt=0, description="vector_backend=milvus: how long one call to Milvus may take"
    )
    hnsw_ef_search: int = Field(
        default=40,
        ge=10,
        le=1000,
        description="HNSW search breadth, recall vs speed (benchmarks/bench_search.py: 40 gives recall@10 0.96-0.97 "
        "on 100k MiniLM vectors, on pgvector and the embedded index)",
    )
    vector_index_persist_min_rows: int = Field(
        default=10_000,
        ge=0,
        description="SQLite: an in-process vector index of at least this many vectors is saved beside the database "
        "file (<file>.vectors/) when the store closes and loaded, checked against the table, on the next start "
        "instead of being rebuilt (about 35 s per 100k vectors); 0: never saved",
    )
    vector_exact_max_rows: int = Field(
        default=8000,
        ge=0,
        description="a filtered vector search that keeps at most this many items ranks them exactly instead of "
        "walking the HNSW graph (faster and exact for a user's or a conversation's items; PostgreSQL, one user's "
        "items: also at most max(500, sqrt(90 x vectors in the table)) of them); 0: always the graph",
    )
    index_max_attempts: int = Field(default=5, ge=1, le=100, description="embedding attempts before a job fails")
    index_retry_base_seconds: float = Field(
        default=2.0, gt=0, description="first retry delay of a failed job; doubles with each attempt"
    )
    index_lease_seconds: float = Field(
        default=300.0, gt=0, description="a claimed job whose worker died is claimed again after this long"
    )
    index_poll_seconds: float = Field(default=1.0, gt=0, description="how often an idle worker looks for jobs")
    search_embeds_pending: int = Field(
        default=64,
        ge=0,
        le=4096,
        description="read-your-writes: a semantic or hybrid search first embeds up to this many of the tenant's items "
        "still waiting for the indexer, so that it finds what was just written; above it, waiting items are found by "
        "full text and the results say how many wait (pending); 0: never (leave it to the indexer)",
    )
    index_jobs_retention_hours: float = Field(
        default=24.0,
        ge=0,
        description="`mnemostore maintenance` deletes index jobs done longer ago than this (failed ones are kept)",
    )

    # -- operations: health and analytics ----------------------------------------------------------------------
    health_timeout_seconds: float = Field(default=5.0, gt=0, description="time each health check may take")
    disk_free_warn_bytes: int = Field(
        default=1024**3, ge=0, description="health warns when the SQLite file's filesystem has less free space"
    )
    model_prices: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(EXAMPLE_MODEL_PRICES),
        description='model -> [prompt, completion] price per 1,000 tokens, e.g. {"gpt-4o": [0.0025, 0.01]}; '
        "a model matches its own name or the longest listed prefix of it",
    )

    # -- backups (mnemostore.ops.backup) -------------------------------------------------------------------------
    backup_signing_key: SecretStr | None = Field(
        default=None,
        description="base64 HMAC-SHA256 key (at least 16 bytes, 32 is best): `backup` signs the manifest with it, "
        "`restore` refuses an archive whose signature does not match, or that is unsigned (unless allowed)",
    )
    backup_max_row_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="longest line (one row) `restore` reads from an archive; a longer one is refused unread",
    )

    # -- HTTP service (mnemostore.api, `mnemostore serve`) ---------------------------------------------------------
    admin_api_key: SecretStr | None = Field(
        default=None,
        description="bearer key of the admin endpoints (/v1/tenants); at least 32 characters. Unset: no admin API",
    )
    server_host: str = Field(default="127.0.0.1", min_length=1, description="address `mnemostore serve` binds")
    server_port: int = Field(default=8000, ge=0, le=65535, description="port `mnemostore serve` listens on")
    server_workers: int = Field(
        default=1, ge=1, le=256, description="worker processes of `mnemostore serve` (more than 1 needs Redis)"
    )
    max_request_bytes: int = Field(
        default=10_000_000, ge=1024, description="largest request body the HTTP service reads (larger: 413)"
    )
    indexer_autostart: bool = Field(
        default=True,
        description="a store with an embedder starts its indexer in this process on the first write that leaves "
        "items to embed, so a single-process program needs no worker (off: run `mnemostore worker`, or call "
        "store.start_indexer()); the CLI's short commands and the HTTP service decide for themselves",
    )
    search_wait_indexer_seconds: float = Field(
        default=60.0,
        ge=0,
        description="read-your-writes: how long a semantic or hybrid search waits for this process's own indexer "
        "to finish embedding the tenant's few waiting items it has claimed (the first batch loads the model)",
    )
    server_indexer: bool = Field(
        default=True,
        description="the HTTP service embeds new items in the background of each worker when an embedder is "
        "available (off: run `mnemostore worker` instead)",
    )

    @field_validator("admin_api_key")
    @classmethod
    def _check_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if len(value.get_secret_value()) < 32:
            # Never echo the key.
            raise ConfigurationError(
                "MNEMOSTORE_ADMIN_API_KEY is shorter than 32 characters: generate one with "
                '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
            )
        return value

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> list[str]:
        items = _split_list(value) or []
        if not isinstance(items, list):
            raise ConfigurationError("MNEMOSTORE_ENCRYPTION_KEYS must be a list of key-id:base64-key items")
        keys: list[str] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            text = item.get_secret_value() if isinstance(item, SecretStr) else str(item)
            kid, sep, material = text.strip().partition(":")
            # Never echo the item: it holds the key.
            if not sep or not _KEY_ID.fullmatch(kid):
                raise ConfigurationError(
                    f"MNEMOSTORE_ENCRYPTION_KEYS item {index + 1} is not key-id:base64-key (the id: letters, "
                    "digits, '_', '-' or '.', up to 64)"
                )
            if kid in seen:
                raise ConfigurationError(f"MNEMOSTORE_ENCRYPTION_KEYS lists key id {kid!r} twice: ids must differ")
            try:
                size = len(_b64decode(material))
            except (binascii.Error, ValueError):
                size = -1
            if size not in (16, 24, 32):
                raise ConfigurationError(
                    f"MNEMOSTORE_ENCRYPTION_KEYS key {kid!r} is not 16, 24 or 32 bytes of base64: generate one "
                    'with `python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"`'
                )
            seen.add(kid)
            keys.append(f"{kid}:{material.strip()}")
        return keys

    @field_validator("blind_index_key", "backup_signing_key")
    @classmethod
    def _check_hmac_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """An HMAC key (the blind index's, the backup signatures'): unset, or at least 16 bytes of base64."""
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            size = len(_b64decode(value.get_secret_value()))
        except (binascii.Error, ValueError):
            size = -1
        if size < 16:
            name = f"MNEMOSTORE_{(info.field_name or '').upper()}"
            raise ConfigurationError(f"{name} must be at least 16 bytes of base64 (32 is best)")
        return value

    @field_validator("default_allowed_models", mode="before")
    @classmethod
    def _parse_models(cls, value: Any) -> Any:
        """A blank value is unset (any model); ``[]`` (JSON) allows none."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return _split_list(value)

    @field_validator("secret_metadata_keys", mode="before")
    @classmethod
    def _parse_metadata_keys(cls, value: Any) -> Any:
        return _split_list(value)

    @model_validator(mode="after")
    def _check_admin_url(self) -> Settings:
        if self.admin_database_url is not None and not self.is_postgres:
            raise ConfigurationError(
                "MNEMOSTORE_ADMIN_DATABASE_URL is set but the database is SQLite, which has no roles: leave it unset"
            )
        return self

    @model_validator(mode="after")
    def _check_encryption(self) -> Settings:
        if self.encryption_keys and self.blind_index_key is None:
            raise ConfigurationError(
                "MNEMOSTORE_ENCRYPTION_KEYS is set but MNEMOSTORE_BLIND_INDEX_KEY is not: set it to 32 random "
                "bytes in base64, like the keys. Email look-ups need it, and unlike the encryption keys it must "
                "never change"
            )
        return self

    def encryption_keyring(self) -> list[tuple[str, bytes]]:
        """``[(key id, key), …]``, the key that encrypts first."""
        pairs = (key.get_secret_value().partition(":") for key in self.encryption_keys)
        return [(kid, _b64decode(material)) for kid, _, material in pairs]

    def blind_index_secret(self) -> bytes | None:
        key = self.blind_index_key
        return _b64decode(key.get_secret_value()) if key is not None else None

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("admin_database_url")
    @classmethod
    def _normalize_admin(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = normalize_database_url(value)
        if not url.startswith("postgresql"):
            raise ConfigurationError(
                "MNEMOSTORE_ADMIN_DATABASE_URL must be a postgresql:// URL (a login that may act as the admin "
                "role); SQLite has no roles: leave it unset"
            )
        return url

    @field_validator("redis_url")
    @classmethod
    def _normalize_redis(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme = value.partition("://")[0].lower()
        if scheme not in {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}:
            raise ConfigurationError(
                f"MNEMOSTORE_REDIS_URL has scheme {scheme!r}: use redis://host:6379/0, rediss://…, unix:///path, "
                "or redis+cluster://host:6379,host:6379 for a Redis Cluster"
            )
        return value

    def redacted_redis_url(self) -> str | None:
        """The Redis URL without its password, for messages, logs and health."""
        if self.redis_url is None:
            return None
        scheme, _, rest = self.redis_url.partition("://")
        _auth, at, host = rest.rpartition("@")
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
