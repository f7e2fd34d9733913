"""Open a store for the ``from_url`` constructors: the schema of a new database and the tenant, as ``Memory`` does."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from mnemostore.errors import TenantAlreadyExists
from mnemostore.service.store import MnemoStore, TenantStore

__all__ = ["DEFAULT_TENANT", "open_tenant"]

DEFAULT_TENANT = "default"

_log = logging.getLogger("mnemostore.integrations.langchain")


def open_tenant(database_url: str | None, tenant: uuid.UUID | str, **settings: Any) -> tuple[MnemoStore, TenantStore]:
    """A store on ``database_url`` and its view of ``tenant``.

    A database without the schema gets it (one behind the code raises ``SchemaOutOfDate``: it is never upgraded
    here); a tenant given by a name that no tenant has is created. The caller closes the store.
    """
    store = MnemoStore(database_url, **settings)
    try:
        if store.get_migration_status().current is None:
            store.migrate()
            _log.info("created the mnemostore schema in %s", store.settings.redacted_url())
        if isinstance(tenant, str) and not _is_uuid(tenant) and store.get_tenant_by_name(tenant) is None:
            try:
                store.create_tenant(tenant)
                _log.info("created the tenant %r", tenant)
            except TenantAlreadyExists:
                pass  # created meanwhile by another process: use it
        view = store.tenant(tenant)
        view.resolve()
    except BaseException:
        store.close()
        raise
    return store, view


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
