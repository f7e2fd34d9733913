"""conversations.external_id: the caller's own key of a conversation (a session id, a thread id)

Integrations name conversations by strings of their own (LangChain's session ids, LangGraph's thread ids, a
channel's thread): the store finds one by that key in one indexed lookup, unique per tenant.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("external_id", sa.String(length=200), nullable=True))
    op.create_index(
        "uq_conversations_tenant_id_external_id", "conversations", ["tenant_id", "external_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_conversations_tenant_id_external_id", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("external_id")
