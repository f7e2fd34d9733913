"""LangGraph on mnemostore (``pip install "mnemostore[langgraph]"``): checkpointers on a tenant's graph state, and
stores (long-term memory across threads) on its graph items.

``AsyncMnemostoreSaver(store.tenant(tenant_id))`` for async graphs, ``MnemostoreSaver(...)`` for sync ones, or
``from_url(database_url, tenant=...)`` on either: threads, namespaces, pending writes, ``list`` filters,
``delete_thread``, ``copy_thread``, ``prune`` and ``delete_for_runs``. ``AsyncMnemostoreStore`` / ``MnemostoreStore``:
namespaced items with value filters, search ranked by mnemostore's index, and a time to live. Nothing is stored
outside the tenant store's methods.
"""

from mnemostore.integrations.langgraph._savers import AsyncMnemostoreSaver, MnemostoreSaver
from mnemostore.integrations.langgraph._stores import AsyncMnemostoreStore, MnemostoreStore

__all__ = ["AsyncMnemostoreSaver", "AsyncMnemostoreStore", "MnemostoreSaver", "MnemostoreStore"]
