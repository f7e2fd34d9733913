"""search: indexing outbox, embeddings, full-text indexes, memory versions

* ``index_jobs``: the outbox. A write of a message, memory or knowledge chunk inserts its job in the same
  transaction; the indexer embeds pending jobs and marks them done (or failed, with the error).
* ``embeddings``: one vector per item, with the model and dimension that produced it. On SQLite the vector is
  float32 bytes and the store keeps an in-process index over them. On PostgreSQL it is pgvector's ``vector`` with
  an HNSW cosine index for the default model's 384 dimensions, when the server has pgvector. Without pgvector
  the column is created as ``bytea`` and stays empty, the upgrade says so, and semantic search raises
  VectorSearchUnavailable with the same advice; full-text search works either way. Once pgvector is installed,
  ``mnemostore reindex`` converts the column and builds the index.
* Full text: PostgreSQL gets a generated ``search_tsv`` column (english configuration) with a GIN index on
  messages, memories and knowledge chunks (adding a stored generated column rewrites those tables). SQLite gets
  external-content FTS5 tables (porter stemmer) kept in step by triggers, filled from the existing rows.
* Deleting an item deletes its vector (triggers on both backends, so foreign-key cascades are covered too).
* ``memory_versions``: earlier texts of memories that a near-duplicate store updated.

Items that existed before this revision have no index jobs: run ``mnemostore reindex`` once to embed them
(full-text search finds them at once).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:40:00.000000
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

# Spelled out, not imported: a shipped revision must never change when the models do.
NEW_TABLES = ("index_jobs", "embeddings", "memory_versions")
SEARCHABLE = (("messages", "message"), ("memories", "memory"), ("knowledge_chunks", "knowledge"))
_TENANT = "NULLIF(current_setting('mnemostore.tenant_id', true), '')::uuid"
_ADMIN = "current_setting('mnemostore.admin', true) = 'on'"
DEFAULT_DIMENSION = 384
PGVECTOR_ADVICE = (
    "PostgreSQL has no pgvector extension: semantic search is off, full-text search works. Install pgvector on "
    "the server (e.g. apt install postgresql-<version>-pgvector, or use an image with it), then run "
    "`mnemostore reindex`"
)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _app_role() -> str:
    config = op.get_context().config
    settings = config.attributes.get("settings") if config is not None else None
    return settings.pg_app_role if settings is not None else "mnemostore_app"


def _create_tables(dialect: str) -> None:
    op.create_table(
        "index_jobs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("item_kind", sa.String(length=20), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_index_jobs_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_index_jobs"),
    )
    op.create_index("ix_index_jobs_queue", "index_jobs", ["state", "next_attempt_at"])
    op.create_index("ix_index_jobs_tenant_id_item_kind_item_id", "index_jobs", ["tenant_id", "item_kind", "item_id"])
    op.create_table(
        "embeddings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("item_kind", sa.String(length=20), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        # bytea on PostgreSQL until pgvector turns it into a vector (below, or `mnemostore reindex`).
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("embedded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_embeddings_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "item_kind", "item_id", name="pk_embeddings"),
    )
    op.create_index(
        "ix_embeddings_tenant_id_item_kind_model_seq", "embeddings", ["tenant_id", "item_kind", "model", "seq"]
    )
    op.create_table(
        "memory_versions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("memory_id", sa.Uuid(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("importance", sa.Float(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_memory_versions_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "memory_id"],
            ["memories.tenant_id", "memories.id"],
            name="fk_memory_versions_tenant_id_memory_id_memories",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_memory_versions"),
    )
    op.create_index(
        "ix_memory_versions_tenant_id_memory_id_created_at", "memory_versions", ["tenant_id", "memory_id", "created_at"]
    )


def _postgres_upgrade() -> None:
    role = _app_role()
    for table in NEW_TABLES:
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{role}"')
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (tenant_id = {_TENANT}) WITH CHECK (tenant_id = {_TENANT})"
        )
        op.execute(f"CREATE POLICY admin_access ON {table} USING ({_ADMIN}) WITH CHECK ({_ADMIN})")
    for table, kind in SEARCHABLE:
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN search_tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED"
        )
        op.execute(f"CREATE INDEX ix_{table}_search_tsv ON {table} USING gin (search_tsv)")
        op.execute(
            f"""CREATE FUNCTION mnemostore_drop_{kind}_embedding() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN
                DELETE FROM embeddings
                WHERE tenant_id = OLD.tenant_id AND item_kind = '{kind}' AND item_id = OLD.id;
                RETURN OLD;
            END $$"""
        )
        op.execute(
            f"CREATE TRIGGER {table}_drop_embedding AFTER DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION mnemostore_drop_{kind}_embedding()"
        )
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')")
    ).scalar_one()
    if not available:
        log.warning(PGVECTOR_ADVICE)
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("ALTER TABLE embeddings ALTER COLUMN vector TYPE vector USING NULL")
    op.execute(
        f"CREATE INDEX ix_embeddings_hnsw_{DEFAULT_DIMENSION} ON embeddings "
        f"USING hnsw ((vector::vector({DEFAULT_DIMENSION})) vector_cosine_ops) WHERE dimension = {DEFAULT_DIMENSION}"
    )


def _sqlite_upgrade() -> None:
    for table, kind in SEARCHABLE:
        fts = f"{table}_fts"
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5(content, content='{table}', content_rowid='rowid', "
            "tokenize='porter unicode61')"
        )
        op.execute(
            f"CREATE TRIGGER {table}_search_insert AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, content) VALUES (new.rowid, new.content); END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_search_delete AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, content) VALUES ('delete', old.rowid, old.content); "
            f"DELETE FROM embeddings WHERE tenant_id = old.tenant_id AND item_kind = '{kind}' "
            "AND item_id = old.id; END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_search_update AFTER UPDATE OF content ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, content) VALUES ('delete', old.rowid, old.content); "
            f"INSERT INTO {fts}(rowid, content) VALUES (new.rowid, new.content); END"
        )
        op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _create_tables(dialect)
    if dialect == "postgresql":
        _postgres_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, kind in SEARCHABLE:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_drop_embedding ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS mnemostore_drop_{kind}_embedding()")
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_search_tsv")
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search_tsv")
        else:
            for suffix in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_search_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {table}_fts")
    # The vector extension stays: other databases of the server may use it.
    op.drop_table("memory_versions")
    op.drop_table("embeddings")
    op.drop_table("index_jobs")
