"""citus: on a Citus coordinator, the tenant tables are distributed by tenant_id (co-located), tenants a reference table

A no-op on SQLite and on PostgreSQL without Citus. On a database where the ``citus`` extension is installed (the
coordinator of a cluster, with its workers added: ``citus_add_node``), the schema is spread over the workers:

* every table with a ``tenant_id`` is distributed by it (``create_distributed_table``), all **co-located** with
  ``tenant_usage``: the shards of one tenant's rows of every table sit together on one worker, so each of the
  store's statements, which all name their tenant, is routed to that one worker (a single-shard "router" plan),
  joins and foreign keys between the tables stay local to it, and Citus can move a tenant's shard group to another
  worker as one piece (``citus_move_shard_placement``);
* ``tenants``, the one global table (keyed by ``id``; every tenant table refers to it), becomes a **reference
  table**: a copy on every node, so the foreign keys to it and the quota join of the append stay local too;
* the hot path's routines (migration 0007) are **distributed functions** on their ``p_tenant`` argument,
  co-located with the tables: the coordinator hands the whole call to the tenant's worker, which runs it against
  its local shards (one hop, as on one server);
* the application and admin roles may log in: Citus opens its connections to the workers as the role the
  statement runs as (the store's ``SET ROLE``), so those roles must be able to log in to the workers. They have no
  password: the nodes' ``pg_hba.conf`` decides who may connect as them (give the coordinator's address ``trust`` or
  certificates on the workers, or store credentials in ``pg_dist_authinfo``).

Why detection: Citus is an extension of the database, and installing it (``CREATE EXTENSION citus`` on the
coordinator) is the operator's decision to run a cluster; a database with Citus but undistributed tables would run
every statement on the coordinator alone. ``MNEMOSTORE_CITUS_DISTRIBUTE`` overrides it: ``off`` leaves the tables
where they are (a single-node Citus used as plain PostgreSQL, or tables distributed by hand), ``on`` makes a
database without Citus an error instead of a silent no-op.

Citus forbids foreign keys between a distributed table and a local one, so the tables' foreign keys are dropped,
the tables distributed, and the same keys added back (each includes ``tenant_id``, the distribution column, or
points at the reference table, which Citus allows). Triggers (deleting an item deletes its vector, migrations 0003,
0006 and 0011) stay: each touches only rows of the same tenant, so on the worker it reaches only the co-located
shards (Citus asks for ``citus.enable_unsafe_triggers`` to accept triggers on distributed tables). Row-level
security policies, grants and the generated ``search_tsv`` columns go with the tables to their shards. Existing
rows are copied to the workers.

Downgrade undoes it (``undistribute_table``): the tables come back to the coordinator with their rows, so the
earlier revisions downgrade as on one server. The roles keep their LOGIN (roles belong to the whole cluster, and
other databases on it may still be distributed). Later revisions run on the distributed tables.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-12 10:00:00
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

# Spelled out, not imported: a shipped revision must never change when the models do. Every table with a
# tenant_id, as of revision 0012; the first is the one the others are co-located with.
TENANT_TABLES = (
    "tenant_usage",
    "api_keys",
    "channel_configs",
    "knowledge_chunks",
    "users",
    "conversations",
    "memories",
    "user_identities",
    "agent_metrics",
    "checkpoints",
    "interaction_events",
    "messages",
    "tool_executions",
    "index_jobs",
    "embeddings",
    "memory_versions",
    "graph_checkpoints",
    "graph_checkpoint_blobs",
    "graph_checkpoint_writes",
    "graph_items",
)
REFERENCE_TABLES = ("tenants",)
FUNCTIONS = (
    "mnemostore_append_messages(uuid, uuid, timestamptz, jsonb, boolean)",
    "mnemostore_history(uuid, uuid, integer, text, bigint)",
)
DISTRIBUTION_ARGUMENT = "p_tenant"


def _settings_value(name: str, default: str) -> str:
    config = op.get_context().config
    settings = config.attributes.get("settings") if config is not None else None
    return str(getattr(settings, name, default)) if settings is not None else default


def _roles() -> tuple[str, str]:
    return _settings_value("pg_app_role", "mnemostore_app"), _settings_value("pg_admin_role", "mnemostore_admin")


def _citus_installed() -> bool:
    return bool(
        op.get_bind().execute(sa.text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")).scalar()
    )


def _distributed() -> bool:
    """Whether the tables are Citus tables (what upgrade did, whatever the setting says now)."""
    return bool(
        op.get_bind()
        .execute(sa.text("SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'tenants'::regclass)"))
        .scalar()
    )


def should_distribute() -> bool:
    """On Citus (the extension installed), unless ``citus_distribute`` says ``off``; ``on`` without Citus fails."""
    if op.get_bind().dialect.name != "postgresql":
        return False
    mode = _settings_value("citus_distribute", "auto")
    installed = _citus_installed()
    if mode == "on" and not installed:
        raise CommandError(
            "citus_distribute is 'on' but this database has no citus extension: run CREATE EXTENSION citus on the "
            "coordinator and add the workers (SELECT citus_add_node(host, port)), or set "
            "MNEMOSTORE_CITUS_DISTRIBUTE=auto to distribute only on Citus"
        )
    return installed and mode != "off"


def _foreign_keys() -> list[tuple[str, str, str]]:
    """(table, name, definition) of every foreign key of the tenant tables."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "WHERE c.contype = 'f' AND c.conrelid = ANY(CAST(:tables AS regclass[])) ORDER BY c.conrelid, c.conname"
        ),
        {"tables": list(TENANT_TABLES)},
    )
    return [(table, name, definition) for table, name, definition in rows]


def _drop(keys: list[tuple[str, str, str]]) -> None:
    for table, name, _definition in keys:
        op.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')


def _add(keys: list[tuple[str, str, str]]) -> None:
    for table, name, definition in keys:
        op.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def upgrade() -> None:
    if not should_distribute():
        return
    # One connection per worker for the whole migration: the DDL below runs in one transaction, and Citus refuses
    # parallel shard DDL after a reference table was written in it.
    op.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
    op.execute("SET LOCAL citus.enable_unsafe_triggers TO on")
    keys = _foreign_keys()
    _drop(keys)
    for table in REFERENCE_TABLES:
        op.execute(f"SELECT create_reference_table('{table}')")
    anchor = TENANT_TABLES[0]
    for table in TENANT_TABLES:
        colocation = "default" if table == anchor else anchor
        op.execute(f"SELECT create_distributed_table('{table}', 'tenant_id', colocate_with => '{colocation}')")
    _add(keys)
    for function in FUNCTIONS:
        op.execute(
            f"SELECT create_distributed_function('{function}', '{DISTRIBUTION_ARGUMENT}', colocate_with => '{anchor}')"
        )
    for role in _roles():
        op.execute(f'ALTER ROLE "{role}" LOGIN')
    log.info("Citus: %d tables distributed by tenant_id, %s a reference table", len(TENANT_TABLES), REFERENCE_TABLES)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or not _citus_installed() or not _distributed():
        return
    op.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
    keys = _foreign_keys()
    _drop(keys)
    for table in (*TENANT_TABLES, *REFERENCE_TABLES):
        op.execute(f"SELECT undistribute_table('{table}')")
    _add(keys)
    # The roles keep LOGIN: they are the cluster's, and other databases of it may be distributed.
