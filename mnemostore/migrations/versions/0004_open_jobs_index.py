"""open index jobs per tenant: a partial index for read-your-writes search

A semantic or hybrid search first asks whether its tenant has items waiting for the indexer (and embeds a few
itself). That question must not scan the whole queue, nor the tenant's done jobs kept for a day: this index holds
only the pending and running jobs, by tenant.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "state IN ('pending', 'running')"


def upgrade() -> None:
    op.create_index(
        "ix_index_jobs_open",
        "index_jobs",
        ["tenant_id"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index("ix_index_jobs_open", table_name="index_jobs")
