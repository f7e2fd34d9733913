"""The mnemostore API: ``AsyncMnemoStore`` and its per-tenant view ``AsyncTenantStore``.

Both classes are composed of one mixin per capability (``_tenants_async``, ``_users_async``,
``_conversations_async``, ``_knowledge_async``, ``_memories_async``, ``_searching_async``, ``_agent_async``,
``_channels_async``, ``_operations_async``); this module only puts them together.

Every tenant operation goes through ``store.tenant(tenant_id)``: the returned view binds each transaction to that
tenant, so a caller cannot forget the scope. Each public method is one transaction: it validates its input first,
then writes everything or nothing.

Example::

    async with AsyncMnemoStore("sqlite:///mnemostore.db") as store:
        tenant = await store.create_tenant("acme")
        t = store.tenant(tenant.id)
        user = await t.get_or_create_user_by_identity("discord", "1234", display_name="Ada")
        conv = await t.create_conversation(user.id, title="Hello")
        await t.add_message(conv.id, role="user", content="Hi!")
        page = await t.get_conversation_history(conv.id, limit=50)
"""

from __future__ import annotations

import uuid

from mnemostore.service._agent_async import AsyncAgentRecords
from mnemostore.service._base import as_id
from mnemostore.service._channels_async import AsyncChannels
from mnemostore.service._conversations_async import AsyncConversations
from mnemostore.service._knowledge_async import AsyncKnowledge
from mnemostore.service._memories_async import AsyncMemories
from mnemostore.service._operations_async import AsyncOperations, AsyncTenantOperations
from mnemostore.service._searching_async import AsyncSearching
from mnemostore.service._tenants_async import AsyncApiKeys
from mnemostore.service._users_async import AsyncUsers

__all__ = ["AsyncMnemoStore", "AsyncTenantStore"]


class AsyncMnemoStore(AsyncOperations):
    """A connection pool to one database plus the operations that span tenants.

    Creating it does no I/O; the schema is checked on first use, and a database that is behind raises
    SchemaOutOfDate naming the command to run. Use it as an async context manager, or call ``close()``.

    Args:
        database_url: ``sqlite:///path.db`` or ``postgresql://…``; defaults to ``MNEMOSTORE_DATABASE_URL``
            and then to ``mnemostore.db`` in the current folder.
        settings: a full Settings object, instead of (or refined by) ``database_url`` and ``overrides``.
        cache: the cache to use instead of the one the settings describe (Redis at ``redis_url``, else
            in-process); for tests and for sharing one cache between stores.
    """

    def tenant(self, tenant_id: uuid.UUID | str) -> AsyncTenantStore:
        """The operations of one tenant; every statement they run is confined to it."""
        return AsyncTenantStore(self, as_id(tenant_id, "tenant_id"))


class AsyncTenantStore(
    AsyncApiKeys,
    AsyncMemories,
    AsyncChannels,
    AsyncUsers,
    AsyncConversations,
    AsyncKnowledge,
    AsyncSearching,
    AsyncAgentRecords,
    AsyncTenantOperations,
):
    """Everything one tenant owns. Get one from ``AsyncMnemoStore.tenant(tenant_id)``.

    Objects of other tenants do not exist here: asking for one by id raises the same NotFoundError as asking
    for an id nobody has.
    """
