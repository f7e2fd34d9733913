"""Citus: whether a connection's database is a Citus coordinator, for the few statements that differ there.

The store learns it once per connection, when the connection opens (``_database_async._install_postgres_hooks``
asks for the ``citus`` extension in the same round trip as its role check), and keeps the answer in the pooled
connection's ``info``. What differs on Citus, and why, is said where it differs: the tenant binding
(``_database_async._bind_tenant_citus``) and the indexer's claim across tenants (``_search_async.claim``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CITUS", "on_citus"]

CITUS = "mnemostore_citus"


def on_citus(conn: Any) -> bool:
    """Whether ``conn`` (a SQLAlchemy connection, sync or async) talks to a Citus coordinator."""
    return bool(conn.info.get(CITUS))
