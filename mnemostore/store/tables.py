"""The relational schema, as SQLAlchemy Core tables shared by SQLite and PostgreSQL.

Every table carries ``tenant_id`` and every primary key, foreign key and unique constraint starts with it. That
is what lets PostgreSQL's row-level security filter by tenant cheaply, and what lets the schema be distributed by
tenant later (Citus co-locates rows whose distribution column is part of every key). ``tenants`` itself is the
one reference table. Ids are UUIDv7, so they sort by creation time.

The Alembic revisions in ``mnemostore/migrations/versions`` must produce exactly this schema; a test compares
them with autogenerate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

__all__ = ["OPEN_JOBS", "OWNED", "TENANT_TABLES", "UtcDateTime", "metadata"]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends (SQLite stores naive text and forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (e.g. datetime.now(UTC))")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Uuid(), nullable=False)


def _tenant_id() -> sa.Column[Any]:
    return sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


def _created_at(name: str = "created_at") -> sa.Column[Any]:
    return sa.Column(name, UtcDateTime(), nullable=False)


def _parent(table: str, column: str, *, nullable: bool) -> list[Any]:
    """A column referencing ``table`` within the same tenant, and the composite key that enforces it."""
    return [
        sa.Column(column, sa.Uuid(), nullable=nullable),
        sa.ForeignKeyConstraint(["tenant_id", column], [f"{table}.tenant_id", f"{table}.id"], ondelete="CASCADE"),
    ]


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("plan", sa.String(50), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("max_users", sa.BigInteger()),
    sa.Column("max_messages", sa.BigInteger()),
    sa.Column("max_storage_bytes", sa.BigInteger()),
    sa.Column("config", _json(), nullable=False),
    _created_at(),
    _created_at("updated_at"),
    # The models the tenant's plan allows, a JSON array of names; null: any (migration 0010).
    sa.Column("allowed_models", _json()),
    sa.UniqueConstraint("name"),
)

# Counters kept in step with every write, so usage reads and quota checks cost one row, not a scan.
tenant_usage = sa.Table(
    "tenant_usage",
    metadata,
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("users", sa.BigInteger(), nullable=False),
    sa.Column("conversations", sa.BigInteger(), nullable=False),
    sa.Column("messages", sa.BigInteger(), nullable=False),
    sa.Column("tokens", sa.BigInteger(), nullable=False),
    sa.Column("storage_bytes", sa.BigInteger(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _tenant_id(),
    _id(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("read_only", sa.Boolean(), nullable=False),
    _created_at(),
    sa.Column("revoked_at", UtcDateTime()),
    sa.Column("last_used_at", UtcDateTime()),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    sa.UniqueConstraint("tenant_id", "key_hash"),
)

users = sa.Table(
    "users",
    metadata,
    _tenant_id(),
    _id(),
    sa.Column("display_name", sa.String(200)),
    # Clear, or an encryption envelope (see store._crypto), which outgrows 320 characters. SQLite ignores
    # declared lengths, and widening it there would mean rebuilding ``users``, whose DROP cascades (0002).
    sa.Column("email", sa.String(320).with_variant(sa.Text(), "postgresql")),
    # Keyed HMAC of the email (the blind index): look-ups and uniqueness when the email is encrypted.
    sa.Column("email_hash", sa.String(64)),
    sa.Column("external_id", sa.String(200)),
    sa.Column("preferred_model", sa.String(200)),
    sa.Column("preferences", _json(), nullable=False),
    sa.Column("metadata", _json(), nullable=False),
    _created_at(),
    _created_at("updated_at"),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    sa.UniqueConstraint("tenant_id", "email"),
    sa.UniqueConstraint("tenant_id", "external_id"),
    # An index, not a constraint: SQLite can add one to an existing table without rebuilding it.
    sa.Index("uq_users_tenant_id_email_hash", "tenant_id", "email_hash", unique=True),
)

user_identities = sa.Table(
    "user_identities",
    metadata,
    _tenant_id(),
    *_parent("users", "user_id", nullable=False),
    sa.Column("channel", sa.String(50), nullable=False),
    sa.Column("channel_user_id", sa.String(200), nullable=False),
    sa.Column("username", sa.String(200)),
    _created_at(),
    sa.PrimaryKeyConstraint("tenant_id", "channel", "channel_user_id"),
    sa.Index(None, "tenant_id", "user_id"),
)

channel_configs = sa.Table(
    "channel_configs",
    metadata,
    _tenant_id(),
    sa.Column("channel", sa.String(50), nullable=False),
    sa.Column("default_model", sa.String(200)),
    sa.Column("settings", _json(), nullable=False),
    sa.Column("rate_limits", _json(), nullable=False),
    _created_at("updated_at"),
    sa.PrimaryKeyConstraint("tenant_id", "channel"),
)

conversations = sa.Table(
    "conversations",
    metadata,
    _tenant_id(),
    _id(),
    *_parent("users", "user_id", nullable=False),
    # The caller's own key of the conversation (a session or thread id; migration 0005), unique per tenant.
    sa.Column("external_id", sa.String(200)),
    sa.Column("title", sa.String(500)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(50)),
    sa.Column("model_override", sa.String(200)),
    sa.Column("metadata", _json(), nullable=False),
    _created_at("started_at"),
    _created_at("last_activity_at"),
    sa.Column("message_count", sa.BigInteger(), nullable=False),
    sa.Column("total_tokens", sa.BigInteger(), nullable=False),
    sa.Column("content_bytes", sa.BigInteger(), nullable=False),
    # The highest sequence number handed out; bumping it row-locks the conversation, which is what
    # keeps concurrent appends gap-free.
    sa.Column("last_seq", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    # A user's conversations, newest activity first, optionally by status.
    sa.Index(None, "tenant_id", "user_id", "status", "last_activity_at", "id"),
    sa.Index("uq_conversations_tenant_id_external_id", "tenant_id", "external_id", unique=True),
    # The tenant's active conversations (partial on PostgreSQL and SQLite alike).
    sa.Index(
        "ix_conversations_active",
        "tenant_id",
        "last_activity_at",
        "id",
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    ),
)

messages = sa.Table(
    "messages",
    metadata,
    _tenant_id(),
    _id(),
    *_parent("conversations", "conversation_id", nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("content", sa.Text(), nullable=False),
    sa.Column("model", sa.String(200)),
    sa.Column("prompt_tokens", sa.Integer(), nullable=False),
    sa.Column("completion_tokens", sa.Integer(), nullable=False),
    sa.Column("metadata", _json(), nullable=False),
    _created_at(),
    sa.Column("idempotency_key", sa.String(200)),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    # History in order: this unique index is the access path for every history read.
    sa.UniqueConstraint("tenant_id", "conversation_id", "seq"),
    # Partial, so the planner can never read history through it (it would scan and sort).
    sa.Index(
        "uq_messages_idempotency_key",
        "tenant_id",
        "conversation_id",
        "idempotency_key",
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    ),
)

memories = sa.Table(
    "memories",
    metadata,
    _tenant_id(),
    _id(),
    *_parent("users", "user_id", nullable=True),
    sa.Column("agent_id", sa.String(200)),
    sa.Column("content", sa.Text(), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("tier", sa.String(20), nullable=False),
    sa.Column("importance", sa.Float(), nullable=False),
    sa.Column("source_message_ids", _json(), nullable=False),
    sa.Column("compression_level", sa.Integer(), nullable=False),
    sa.Column("expires_at", UtcDateTime()),
    sa.Column("metadata", _json(), nullable=False),
    _created_at(),
    _created_at("updated_at"),
    # How often and when retrieval or search last returned the memory (migration 0010): the lifecycle's input.
    sa.Column("recall_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_recalled_at", UtcDateTime()),
    # The conversation the memory belongs to (migration 0011). Not a foreign key: SQLite cannot add one without
    # rebuilding ``memories``, whose drop would cascade to its versions. Triggers of 0011 set it to NULL when the
    # conversation is deleted (the memory outlives it); writes check and lock the conversation.
    sa.Column("conversation_id", sa.Uuid()),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    sa.Index(None, "tenant_id", "user_id", "tier", "importance"),
    sa.Index(None, "tenant_id", "expires_at"),
    sa.Index(None, "tenant_id", "conversation_id"),
)

knowledge_chunks = sa.Table(
    "knowledge_chunks",
    metadata,
    _tenant_id(),
    _id(),
    sa.Column("source", sa.String(500), nullable=False),
    sa.Column("external_id", sa.String(500), nullable=False),
    sa.Column("title", sa.String(1000)),
    sa.Column("content", sa.Text(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("content_bytes", sa.BigInteger(), nullable=False),
    sa.Column("metadata", _json(), nullable=False),
    _created_at(),
    _created_at("updated_at"),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    # Upsert key, and the access path for listing a source.
    sa.UniqueConstraint("tenant_id", "source", "external_id"),
)

tool_executions = sa.Table(
    "tool_executions",
    metadata,
    _tenant_id(),
    _id(),
    *_parent("conversations", "conversation_id", nullable=True),
    sa.Column("tool", sa.String(200), nullable=False),
    sa.Column("action", sa.String(200)),
    sa.Column("parameters", _json(), nullable=False),
    sa.Column("result", _json()),
    sa.Column("success", sa.Boolean(), nullable=False),
    sa.Column("error", sa.Text()),
    sa.Column("duration_ms", sa.Float()),
    _created_at(),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    sa.Index(None, "tenant_id", "conversation_id", "created_at"),
    sa.Index(None, "tenant_id", "tool", "created_at"),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    _tenant_id(),
    _id(),
    *_parent("conversations", "conversation_id", nullable=False),
    sa.Column("iteration", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("state", _json(), nullable=False),
    sa.Column("context_summary", sa.Text()),
    # Not a foreign key: pruning old checkpoints must not cascade into their descendants.
    sa.Column("parent_id", sa.Uuid()),
    _created_at(),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    sa.Index(None, "tenant_id", "conversation_id", "iteration"),
)

interaction_events = sa.Table(
    "interaction_events",
    metadata,
    _tenant_id(),
    _id(),
    *_parent("conversations", "conversation_id", nullable=True),
    sa.Column("checkpoint_id", sa.Uuid()),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("data", _json(), nullable=False),
    sa.Column("goal_modified", sa.Boolean(), nullable=False),
    _created_at(),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    sa.Index(None, "tenant_id", "conversation_id", "created_at"),
)

agent_metrics = sa.Table(
    "agent_metrics",
    metadata,
    _tenant_id(),
    _id(),
    *_parent("conversations", "conversation_id", nullable=True),
    sa.Column("metric_type", sa.String(100), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("labels", _json(), nullable=False),
    _created_at("recorded_at"),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    sa.Index(None, "tenant_id", "metric_type", "recorded_at"),
    sa.Index(None, "tenant_id", "conversation_id", "recorded_at"),
)


# Graph state of agent frameworks (LangGraph's checkpointer: mnemostore.integrations.langgraph). A thread's
# checkpoints, one per (namespace, id); ids sort by time, so the newest is the greatest. The checkpoint itself and
# every value are the framework's serialized bytes with its type tag: the store never decodes them. What the store
# must see is plain: the channel versions a checkpoint references (to load its values and to free the values no
# checkpoint references any more), its metadata (JSON, for filters) and the run that wrote it.
graph_checkpoints = sa.Table(
    "graph_checkpoints",
    metadata,
    _tenant_id(),
    sa.Column("thread_id", sa.String(255), nullable=False),
    sa.Column("checkpoint_ns", sa.String(1000), nullable=False),
    sa.Column("checkpoint_id", sa.String(100), nullable=False),
    sa.Column("parent_checkpoint_id", sa.String(100)),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
    sa.Column("channel_versions", _json(), nullable=False),
    sa.Column("metadata", _json(), nullable=False),
    sa.Column("run_id", sa.String(255)),
    _created_at(),
    # The latest checkpoint of a thread's namespace, a listing newest first, a thread's deletion: all prefixes.
    sa.PrimaryKeyConstraint("tenant_id", "thread_id", "checkpoint_ns", "checkpoint_id"),
    sa.Index(None, "tenant_id", "run_id"),
)

# Channel values, each (channel, version) of a thread's namespace stored once, however many checkpoints share it.
graph_checkpoint_blobs = sa.Table(
    "graph_checkpoint_blobs",
    metadata,
    _tenant_id(),
    sa.Column("thread_id", sa.String(255), nullable=False),
    sa.Column("checkpoint_ns", sa.String(1000), nullable=False),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("version", sa.String(100), nullable=False),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("blob", sa.LargeBinary()),
    sa.PrimaryKeyConstraint("tenant_id", "thread_id", "checkpoint_ns", "channel", "version"),
)

# The pending writes of a checkpoint's tasks; (task_id, idx) is their idempotency key.
graph_checkpoint_writes = sa.Table(
    "graph_checkpoint_writes",
    metadata,
    _tenant_id(),
    sa.Column("thread_id", sa.String(255), nullable=False),
    sa.Column("checkpoint_ns", sa.String(1000), nullable=False),
    sa.Column("checkpoint_id", sa.String(100), nullable=False),
    sa.Column("task_id", sa.String(255), nullable=False),
    sa.Column("idx", sa.Integer(), nullable=False),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("blob", sa.LargeBinary(), nullable=False),
    sa.Column("task_path", sa.String(1000), nullable=False),
    sa.PrimaryKeyConstraint("tenant_id", "thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
)


# Long-term items of agent frameworks (LangGraph's BaseStore): JSON documents under a namespace (labels joined by
# "."), one per (namespace, key). ``content`` is the text the search index embeds and full-text search reads ("" for
# an item not indexed); ``expires_at`` is the end of its time to live, pushed back on reads by ``ttl_minutes``.
graph_items = sa.Table(
    "graph_items",
    metadata,
    _tenant_id(),
    _id(),
    sa.Column("namespace", sa.String(1000), nullable=False),
    sa.Column("key", sa.String(500), nullable=False),
    sa.Column("value", _json(), nullable=False),
    sa.Column("content", sa.Text(), nullable=False),
    _created_at(),
    _created_at("updated_at"),
    sa.Column("expires_at", UtcDateTime()),
    sa.Column("ttl_minutes", sa.Float()),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    # Get and put by key; a namespace prefix is a range of this index.
    sa.UniqueConstraint("tenant_id", "namespace", "key"),
    sa.Index(None, "tenant_id", "expires_at"),
)


class Vector(sa.types.UserDefinedType[list[float]]):
    """pgvector's ``vector`` (dimension left open: each model's HNSW index casts to its own size).

    Values travel as pgvector's text form ``[1,2,3]``; no Python package for pgvector is needed.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"

    def bind_processor(self, dialect: Dialect) -> Any:
        def process(value: Any) -> str | None:
            return None if value is None else "[" + ",".join(repr(float(x)) for x in value) + "]"

        return process

    def bind_expression(self, bindvalue: Any) -> Any:
        return sa.cast(bindvalue, self)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        def process(value: Any) -> list[float] | None:
            return None if value is None else [float(x) for x in str(value).strip("[]").split(",") if x]

        return process


# The search outbox: every write of a searchable item inserts its job in the same transaction; the indexer
# claims pending jobs (state running, claimed_until a lease), embeds them and marks them done, or retries them
# with backoff (next_attempt_at) until index_max_attempts, then marks them failed with last_error.
# The jobs still to do, written as a literal so that a query using the same words can use the partial index
# (neither planner proves that a parameterised ``state IN (?, ?)`` implies it).
OPEN_JOBS = "state IN ('pending', 'running')"

index_jobs = sa.Table(
    "index_jobs",
    metadata,
    _tenant_id(),
    _id(),
    sa.Column("item_kind", sa.String(20), nullable=False),
    sa.Column("item_id", sa.Uuid(), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
    sa.Column("claimed_by", sa.String(100)),
    sa.Column("claimed_until", UtcDateTime()),
    sa.Column("last_error", sa.Text()),
    _created_at(),
    _created_at("updated_at"),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    # The worker's queue: claimable jobs across tenants, oldest due first.
    sa.Index("ix_index_jobs_queue", "state", "next_attempt_at"),
    # A tenant's open jobs, which every semantic search counts first (read-your-writes; migration 0004).
    sa.Index(
        "ix_index_jobs_open",
        "tenant_id",
        postgresql_where=sa.text(OPEN_JOBS),
        sqlite_where=sa.text(OPEN_JOBS),
    ),
    sa.Index(None, "tenant_id", "item_kind", "item_id"),
)

# One vector per searchable item, with the model and dimension that produced it. ``vector`` is float32 bytes on
# SQLite and pgvector's ``vector`` on PostgreSQL (only where pgvector is installed; see migration 0003). ``seq``
# grows with every vector written, so the embedded index reads only what is new. Deleting an item deletes its
# vector (triggers of migration 0003). ``owner_id`` is the user who owns the item (a memory's user, a message's
# conversation's user; none for knowledge and graph items), which never changes: a search for one user's items
# finds their vectors through ``ix_embeddings_owner`` without joining each candidate to its item (migration 0009).
# ``model`` is the embedder's name, or the caller's for a vector they brought (``supplied``).
OWNED = "owner_id IS NOT NULL"

embeddings = sa.Table(
    "embeddings",
    metadata,
    _tenant_id(),
    sa.Column("item_kind", sa.String(20), nullable=False),
    sa.Column("item_id", sa.Uuid(), nullable=False),
    sa.Column("owner_id", sa.Uuid()),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("dimension", sa.Integer(), nullable=False),
    sa.Column("vector", sa.LargeBinary().with_variant(Vector(), "postgresql")),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    _created_at("embedded_at"),
    # True: the caller computed the vector (``vector=`` on a write, migration 0011); the indexer never replaces
    # it and ``reindex`` leaves its item alone.
    sa.Column("supplied", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.PrimaryKeyConstraint("tenant_id", "item_kind", "item_id"),
    sa.Index(None, "tenant_id", "item_kind", "model", "seq"),
    # A user's vectors of one kind (knowledge and graph items have no owner and are left out).
    sa.Index(
        "ix_embeddings_owner",
        "tenant_id",
        "owner_id",
        "item_kind",
        postgresql_where=sa.text(OWNED),
        sqlite_where=sa.text(OWNED),
    ),
)

# Earlier states of a memory that update_memory, a near-duplicate store_memory or the lifecycle replaced
# (get_memory_history). ``tier`` and ``reason`` (what replaced the state) are null on versions older than 0010.
memory_versions = sa.Table(
    "memory_versions",
    metadata,
    _tenant_id(),
    _id(),
    *_parent("memories", "memory_id", nullable=False),
    sa.Column("content", sa.Text(), nullable=False),
    sa.Column("importance", sa.Float(), nullable=False),
    sa.Column("metadata", _json(), nullable=False),
    _created_at(),
    sa.Column("tier", sa.String(20)),
    sa.Column("reason", sa.String(20)),
    sa.PrimaryKeyConstraint("tenant_id", "id"),
    sa.Index(None, "tenant_id", "memory_id", "created_at"),
)

# Tables whose rows belong to one tenant; row-level security covers each of them (and ``tenants``).
TENANT_TABLES: tuple[str, ...] = tuple(t.name for t in metadata.sorted_tables if t.name != "tenants")
