"""admin role: cross-tenant access by database role, not by a setting anyone can change

Until now a row was visible to every role when the transaction-local setting ``mnemostore.admin`` was ``on``, and
any role may set that (``SELECT set_config('mnemostore.admin', 'on', true)``): SQL injected into the application's
connection could read and write every tenant. This revision replaces that policy, on every table under row-level
security, with policies bound to roles:

* ``tenant_isolation ... TO <pg_app_role>``: the tenant's rows only (the ``mnemostore.tenant_id`` binding), for the
  application role and every role that inherits it;
* ``admin_access ... TO <pg_admin_role>``: every row, for the new NOLOGIN role ``mnemostore_admin`` (setting
  ``pg_admin_role``) and its members. The store switches to it (``SET LOCAL ROLE``) for admin work only.

PostgreSQL applies a policy to the roles it names and to their members, and only a member of a role (or a
superuser) may ``SET ROLE`` to it. So a login that is a member of the application role only stays bound to one
tenant whatever it runs: after ``RESET ROLE`` it is itself, which inherits the tenant policy, and
``SET ROLE mnemostore_admin`` is refused. No setting widens what it sees. Other roles (the owner, when it is not a
superuser) match no policy and see no rows.

The admin role is created once per server, like the application role, and kept on downgrade (other databases of
the server may use it); downgrade restores the setting-based policies and revokes the role's privileges here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Spelled out, not imported: a shipped revision must never change when the models do. Every table under
# row-level security (0001, 0003, 0006), with the column that names its tenant.
RLS_TABLES = (
    ("tenants", "id"),
    ("api_keys", "tenant_id"),
    ("channel_configs", "tenant_id"),
    ("knowledge_chunks", "tenant_id"),
    ("tenant_usage", "tenant_id"),
    ("users", "tenant_id"),
    ("conversations", "tenant_id"),
    ("memories", "tenant_id"),
    ("user_identities", "tenant_id"),
    ("agent_metrics", "tenant_id"),
    ("checkpoints", "tenant_id"),
    ("interaction_events", "tenant_id"),
    ("messages", "tenant_id"),
    ("tool_executions", "tenant_id"),
    ("index_jobs", "tenant_id"),
    ("embeddings", "tenant_id"),
    ("memory_versions", "tenant_id"),
    ("graph_checkpoints", "tenant_id"),
    ("graph_checkpoint_blobs", "tenant_id"),
    ("graph_checkpoint_writes", "tenant_id"),
    ("graph_items", "tenant_id"),
)
_TENANT = "NULLIF(current_setting('mnemostore.tenant_id', true), '')::uuid"
_OLD_ADMIN = "current_setting('mnemostore.admin', true) = 'on'"


def _roles() -> tuple[str, str]:
    """(application role, admin role), from the settings the migration runs with."""
    config = op.get_context().config
    settings = config.attributes.get("settings") if config is not None else None
    if settings is None:
        return "mnemostore_app", "mnemostore_admin"
    return settings.pg_app_role, settings.pg_admin_role


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    app, admin = _roles()
    # CREATE ROLE has no IF NOT EXISTS, and two databases may migrate at once: tolerate the race.
    op.execute(
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{admin}') THEN
                CREATE ROLE "{admin}" NOLOGIN NOBYPASSRLS;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$"""
    )
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{admin}"')
    op.execute(f'GRANT SELECT ON alembic_version TO "{admin}"')
    for table, key in RLS_TABLES:
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{admin}"')
        op.execute(f"DROP POLICY IF EXISTS admin_access ON {table}")
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(
            f'CREATE POLICY tenant_isolation ON {table} TO "{app}" '
            f"USING ({key} = {_TENANT}) WITH CHECK ({key} = {_TENANT})"
        )
        op.execute(f'CREATE POLICY admin_access ON {table} TO "{admin}" USING (true) WITH CHECK (true)')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _app, admin = _roles()
    for table, key in RLS_TABLES:
        op.execute(f"DROP POLICY IF EXISTS admin_access ON {table}")
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({key} = {_TENANT}) WITH CHECK ({key} = {_TENANT})"
        )
        op.execute(f"CREATE POLICY admin_access ON {table} USING ({_OLD_ADMIN}) WITH CHECK ({_OLD_ADMIN})")
        op.execute(f'REVOKE ALL ON {table} FROM "{admin}"')
    op.execute(f'REVOKE ALL ON alembic_version FROM "{admin}"')
    op.execute(f'REVOKE USAGE ON SCHEMA public FROM "{admin}"')
