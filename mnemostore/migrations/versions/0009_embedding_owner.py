"""embeddings.owner_id: the user who owns each vector's item, with its own index, for user-filtered vector search

A semantic search for one user's memories or messages used to join every candidate vector to its item (and a
message to its conversation) to learn whose it was: 2,000 joins, each checked by row-level security, to rank a
user's 2% of 100,000 vectors. The owner now sits on the vector row (a memory's user, a message's conversation's
user; knowledge chunks and graph items have none), written by the indexer with the vector, and never changes (an
item's user is fixed at its creation). The partial index ``ix_embeddings_owner`` (tenant_id, owner_id, item_kind)
finds one user's vectors of one kind directly.

Existing vectors get their owner from their items here, in the admin scope (row-level security is forced on
every table, so the migration's own role would otherwise see no row).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Spelled out, not imported: a shipped revision must never change when the models do.
OWNED = "owner_id IS NOT NULL"
BACKFILL = (
    "UPDATE embeddings SET owner_id = (SELECT m.user_id FROM memories m "
    "WHERE m.tenant_id = embeddings.tenant_id AND m.id = embeddings.item_id) "
    "WHERE item_kind = 'memory'",
    "UPDATE embeddings SET owner_id = (SELECT c.user_id FROM messages m JOIN conversations c "
    "ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id "
    "WHERE m.tenant_id = embeddings.tenant_id AND m.id = embeddings.item_id) "
    "WHERE item_kind = 'message'",
)


def upgrade() -> None:
    op.add_column("embeddings", sa.Column("owner_id", sa.Uuid(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # Transaction-local, like every binding of the store: the admin policy lets the backfill see all rows.
        op.execute("SELECT set_config('mnemostore.admin', 'on', true)")
    for statement in BACKFILL:
        op.execute(statement)
    # After the backfill, so that the update does not maintain the index row by row.
    op.create_index(
        "ix_embeddings_owner",
        "embeddings",
        ["tenant_id", "owner_id", "item_kind"],
        postgresql_where=sa.text(OWNED),
        sqlite_where=sa.text(OWNED),
    )


def downgrade() -> None:
    op.drop_index("ix_embeddings_owner", table_name="embeddings")
    # Plain ALTER TABLE on both (SQLite 3.35+): batch mode would rebuild the table under the triggers of 0003,
    # which name it.
    op.execute("ALTER TABLE embeddings DROP COLUMN owner_id")
