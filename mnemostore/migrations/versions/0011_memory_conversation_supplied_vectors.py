"""memories.conversation_id and embeddings.supplied: memories that belong to a conversation, vectors from the caller

* ``memories.conversation_id``: the conversation a memory was stored from (nullable, indexed with the tenant).
  Not a foreign key: SQLite cannot add one to an existing table without rebuilding ``memories``, and dropping the
  old table would cascade to ``memory_versions``. Instead a trigger on ``conversations`` (both backends) sets it
  to NULL when the conversation is deleted: the memory outlives the conversation it came from; the store checks
  (and on PostgreSQL key-share locks) the conversation when it writes the reference.
* ``embeddings.supplied``: true for a vector the caller computed (``store_memory(..., vector=, model=)``). The
  indexer never replaces such a vector and ``reindex`` does not queue its item. Existing vectors are the store's.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Spelled out, not imported: a shipped revision must never change when the models do.
INDEX = "ix_memories_tenant_id_conversation_id"
PG_FUNCTION = """CREATE FUNCTION mnemostore_detach_memories() RETURNS trigger
LANGUAGE plpgsql AS $$ BEGIN
    UPDATE memories SET conversation_id = NULL
    WHERE tenant_id = OLD.tenant_id AND conversation_id = OLD.id;
    RETURN OLD;
END $$"""
PG_TRIGGER = (
    "CREATE TRIGGER conversations_detach_memories BEFORE DELETE ON conversations "
    "FOR EACH ROW EXECUTE FUNCTION mnemostore_detach_memories()"
)
SQLITE_TRIGGER = (
    "CREATE TRIGGER conversations_detach_memories BEFORE DELETE ON conversations BEGIN "
    "UPDATE memories SET conversation_id = NULL WHERE tenant_id = old.tenant_id AND conversation_id = old.id; END"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("memories", sa.Column("conversation_id", sa.Uuid(), nullable=True))
    op.create_index(INDEX, "memories", ["tenant_id", "conversation_id"])
    op.add_column("embeddings", sa.Column("supplied", sa.Boolean(), nullable=False, server_default=sa.false()))
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS conversations_detach_memories ON conversations")
        op.execute("DROP FUNCTION IF EXISTS mnemostore_detach_memories()")
    else:
        op.execute("DROP TRIGGER IF EXISTS conversations_detach_memories")
    op.drop_index(INDEX, table_name="memories")
    # Plain ALTER TABLE on both (SQLite 3.35+): batch mode would rebuild the tables under the triggers of 0003.
    op.execute("ALTER TABLE embeddings DROP COLUMN supplied")
    op.execute("ALTER TABLE memories DROP COLUMN conversation_id")
