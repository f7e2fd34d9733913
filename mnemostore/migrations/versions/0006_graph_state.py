"""graph state: the checkpoints, channel values and pending writes of agent graphs (LangGraph's checkpointer)

* ``graph_checkpoints``: one row per checkpoint of a thread's namespace; the checkpoint is the framework's
  serialized bytes (with its type tag), next to what the store must read: the channel versions it references, its
  metadata (JSON, for filters) and its run id.
* ``graph_checkpoint_blobs``: channel values, each (channel, version) of a thread's namespace stored once.
* ``graph_checkpoint_writes``: the pending writes of a checkpoint's tasks, keyed by (task_id, idx).

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
NEW_TABLES = ("graph_checkpoints", "graph_checkpoint_blobs", "graph_checkpoint_writes")
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


def downgrade() -> None:
    op.drop_table("graph_checkpoint_writes")
    op.drop_table("graph_checkpoint_blobs")
    op.drop_index("ix_graph_checkpoints_tenant_id_run_id", table_name="graph_checkpoints")
    op.drop_table("graph_checkpoints")
