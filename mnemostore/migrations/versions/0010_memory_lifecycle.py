"""memory lifecycle and plan models: recall counts on memories, tier changes in versions, allowed models of tenants

- ``memories.recall_count`` / ``memories.last_recalled_at``: how often and when retrieval or search last returned
  the memory (one batched UPDATE per call); maintenance promotes, demotes and retires memories by them.
- ``memory_versions.tier`` / ``memory_versions.reason``: the tier of the kept state and what replaced it
  (``update``, ``merge``, ``promote``, ``demote``, ``retire``); both null on versions written before this revision.
- ``tenants.allowed_models``: the models a tenant's plan allows (a JSON array; null: any), checked where a
  conversation or a message names a model.

Columns only: every table keeps its tenant key and its row-level security policies (migration 0001), and no
existing row needs a backfill (a count of 0, no recall yet, no tier recorded, any model).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column("memories", sa.Column("recall_count", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("memories", sa.Column("last_recalled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("memory_versions", sa.Column("tier", sa.String(length=20), nullable=True))
    op.add_column("memory_versions", sa.Column("reason", sa.String(length=20), nullable=True))
    op.add_column("tenants", sa.Column("allowed_models", _json(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE on both (SQLite 3.35+): batch mode would rebuild the tables under the triggers of 0003,
    # which name memories.
    for table, column in (
        ("tenants", "allowed_models"),
        ("memory_versions", "reason"),
        ("memory_versions", "tier"),
        ("memories", "last_recalled_at"),
        ("memories", "recall_count"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
