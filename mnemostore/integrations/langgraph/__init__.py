"""LangGraph on mnemostore: checkpointers on a tenant's graph state (``pip install "mnemostore[langgraph]"``).

``AsyncMnemostoreSaver(store.tenant(tenant_id))`` for async graphs, ``MnemostoreSaver(...)`` for sync ones, or
``from_url(database_url, tenant=...)`` on either. Threads, namespaces, pending writes, ``list`` filters,
``delete_thread``, ``copy_thread``, ``prune`` and ``delete_for_runs`` are the tenant store's graph-state methods;
nothing is stored outside them.
"""

from mnemostore.integrations.langgraph._savers import AsyncMnemostoreSaver, MnemostoreSaver

__all__ = ["AsyncMnemostoreSaver", "MnemostoreSaver"]
