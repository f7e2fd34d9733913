"""encrypted fields: users.email_hash blind index, wider users.email on PostgreSQL

``users.email`` may now hold an encryption envelope (``enc:v1:<key id>:<base64>``, see ``store._crypto``), and
``email_hash`` the keyed HMAC that look-ups and uniqueness use when it does. Both backends get the column and a
unique index (an index, because SQLite cannot add a constraint to an existing table). Only PostgreSQL widens
``email`` to text: SQLite ignores declared lengths, and changing the type there means rebuilding ``users``, whose
DROP would cascade through the foreign keys into conversations and memories. Existing rows stay as they are
(clear, no hash) until encryption is configured and ``mnemostore rotate-keys`` runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:21:32.634419
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("email_hash", sa.String(length=64), nullable=True))
    op.create_index("uq_users_tenant_id_email_hash", "users", ["tenant_id", "email_hash"], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("users", "email", existing_type=sa.String(length=320), type_=sa.Text(), existing_nullable=True)


def downgrade() -> None:
    # 0001 knows nothing of envelopes: it would hand ciphertext out as emails and lose the hashes for good.
    sealed = op.get_bind().execute(sa.text("SELECT count(*) FROM users WHERE email LIKE 'enc:v1:%'")).scalar_one()
    if sealed:
        raise CommandError(
            f"{sealed} users have an encrypted email, which revision 0001 cannot read: downgrading would lose "
            "them. Keep revision 0002, or restore a backup made before encryption was turned on"
        )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("users", "email", existing_type=sa.Text(), type_=sa.String(length=320), existing_nullable=True)
    op.drop_index("uq_users_tenant_id_email_hash", table_name="users")
    op.drop_column("users", "email_hash")
