"""graph state: checkpoints, channel values and pending writes of agent graphs, and their long-term items

LangGraph's checkpointer and store (mnemostore.integrations.langgraph) keep everything here:

* ``graph_checkpoints``: one row per checkpoint of a thread's namespace; the checkpoint is the framework's
  serialized bytes (with its type tag), next to what the store must read: the channel versions it references, its
  metadata (JSON, for filters) and its run id.
* ``graph_checkpoint_blobs``: channel values, each (channel, version) of a thread's namespace stored once.
* ``graph_checkpoint_writes``: the pending writes of a checkpoint's tasks, keyed by (task_id, idx).
* ``graph_items``: JSON documents by (namespace, key), with a time to live; their ``content`` (the indexed text)
  is searchable like the other searchable tables (revision 0003): index jobs and embeddings of kind
  ``graph_item``, full text through a generated ``search_tsv`` column (PostgreSQL) or an FTS5 table (SQLite), and
  deleting an item deletes its vector.

Every key leads with ``tenant_id``; on PostgreSQL the tables get the tenant policies of the other tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Spelled out, not imported: a shipped revision must never change when the models do.
NEW_TABLES = ("graph_checkpoints", "graph_checkpoint_blobs", "graph_checkpoint_writes", "graph_items")
_TENANT = "NULLIF(current_setting('mnemostore.tenant_id', true), '')::uuid"
_ADMIN = "current_setting('mnemostore.admin', true) = 'on'"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _app_role() -> str:
    config = op.get_context().config
    settings = config.attributes.get("settings") if config is not None else None
    return settings.pg_app_role if settings is not None else "mnemostore_app"


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "graph_checkpoints",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.String(length=255), nullable=False),
        sa.Column("checkpoint_ns", sa.String(length=1000), nullable=False),
        sa.Column("checkpoint_id", sa.String(length=100), nullable=False),
        sa.Column("parent_checkpoint_id", sa.String(length=100), nullable=True),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
        sa.Column("channel_versions", _json(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("graph_checkpoints"),
        sa.PrimaryKeyConstraint(
            "tenant_id", "thread_id", "checkpoint_ns", "checkpoint_id", name="pk_graph_checkpoints"
        ),
    )
    op.create_index("ix_graph_checkpoints_tenant_id_run_id", "graph_checkpoints", ["tenant_id", "run_id"])
    op.create_table(
        "graph_checkpoint_blobs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.String(length=255), nullable=False),
        sa.Column("checkpoint_ns", sa.String(length=1000), nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        _tenant_fk("graph_checkpoint_blobs"),
        sa.PrimaryKeyConstraint(
            "tenant_id", "thread_id", "checkpoint_ns", "channel", "version", name="pk_graph_checkpoint_blobs"
        ),
    )
    op.create_table(
        "graph_checkpoint_writes",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.String(length=255), nullable=False),
        sa.Column("checkpoint_ns", sa.String(length=1000), nullable=False),
        sa.Column("checkpoint_id", sa.String(length=100), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("task_path", sa.String(length=1000), nullable=False),
        _tenant_fk("graph_checkpoint_writes"),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "thread_id",
            "checkpoint_ns",
            "checkpoint_id",
            "task_id",
            "idx",
            name="pk_graph_checkpoint_writes",
        ),
    )
    op.create_table(
        "graph_items",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("namespace", sa.String(length=1000), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("value", _json(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ttl_minutes", sa.Float(), nullable=True),
        _tenant_fk("graph_items"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_graph_items"),
        sa.UniqueConstraint("tenant_id", "namespace", "key", name="uq_graph_items_tenant_id_namespace_key"),
    )
    op.create_index("ix_graph_items_tenant_id_expires_at", "graph_items", ["tenant_id", "expires_at"])
    if op.get_bind().dialect.name == "postgresql":
        _postgres_search()
    else:
        _sqlite_search()
    if op.get_bind().dialect.name == "postgresql":
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


def _postgres_search() -> None:
    op.execute(
        "ALTER TABLE graph_items ADD COLUMN search_tsv tsvector "
        "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED"
    )
    op.execute("CREATE INDEX ix_graph_items_search_tsv ON graph_items USING gin (search_tsv)")
    op.execute(
        """CREATE FUNCTION mnemostore_drop_graph_item_embedding() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN
            DELETE FROM embeddings
            WHERE tenant_id = OLD.tenant_id AND item_kind = 'graph_item' AND item_id = OLD.id;
            RETURN OLD;
        END $$"""
    )
    op.execute(
        "CREATE TRIGGER graph_items_drop_embedding AFTER DELETE ON graph_items "
        "FOR EACH ROW EXECUTE FUNCTION mnemostore_drop_graph_item_embedding()"
    )


def _sqlite_search() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE graph_items_fts USING fts5(content, content='graph_items', content_rowid='rowid', "
        "tokenize='porter unicode61')"
    )
    op.execute(
        "CREATE TRIGGER graph_items_search_insert AFTER INSERT ON graph_items BEGIN "
        "INSERT INTO graph_items_fts(rowid, content) VALUES (new.rowid, new.content); END"
    )
    op.execute(
        "CREATE TRIGGER graph_items_search_delete AFTER DELETE ON graph_items BEGIN "
        "INSERT INTO graph_items_fts(graph_items_fts, rowid, content) VALUES ('delete', old.rowid, old.content); "
        "DELETE FROM embeddings WHERE tenant_id = old.tenant_id AND item_kind = 'graph_item' "
        "AND item_id = old.id; END"
    )
    op.execute(
        "CREATE TRIGGER graph_items_search_update AFTER UPDATE OF content ON graph_items BEGIN "
        "INSERT INTO graph_items_fts(graph_items_fts, rowid, content) VALUES ('delete', old.rowid, old.content); "
        "INSERT INTO graph_items_fts(rowid, content) VALUES (new.rowid, new.content); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS graph_items_drop_embedding ON graph_items")
        op.execute("DROP FUNCTION IF EXISTS mnemostore_drop_graph_item_embedding()")
    else:
        for suffix in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS graph_items_search_{suffix}")
        op.execute("DROP TABLE IF EXISTS graph_items_fts")
    op.drop_index("ix_graph_items_tenant_id_expires_at", table_name="graph_items")
    op.drop_table("graph_items")
    op.drop_table("graph_checkpoint_writes")
    op.drop_table("graph_checkpoint_blobs")
    op.drop_index("ix_graph_checkpoints_tenant_id_run_id", table_name="graph_checkpoints")
    op.drop_table("graph_checkpoints")
