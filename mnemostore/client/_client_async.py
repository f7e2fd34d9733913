"""``AsyncClient``: the HTTP service (``mnemostore serve``) from Python, with the library's own types and errors.

(async; ``_client.py`` is generated from this file.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from mnemostore.client import _endpoints as ep
from mnemostore.client._agent_async import AsyncAgentApi
from mnemostore.client._channels_async import AsyncChannelsApi
from mnemostore.client._conversations_async import AsyncConversationsApi
from mnemostore.client._endpoints import calls
from mnemostore.client._memories_async import AsyncMemoriesApi
from mnemostore.client._memory_async import AsyncMemoryClient
from mnemostore.client._operations_async import AsyncOperationsApi
from mnemostore.client._tenants_async import AsyncTenantsApi
from mnemostore.client._users_async import AsyncUsersApi

__all__ = ["AsyncClient"]


class AsyncClient(
    AsyncTenantsApi,
    AsyncUsersApi,
    AsyncConversationsApi,
    AsyncMemoriesApi,
    AsyncOperationsApi,
    AsyncAgentApi,
    AsyncChannelsApi,
):
    """The mnemostore HTTP service's API, with the method names, types and exceptions of the library.

    A method returns what the store's method of that name returns (``User``, ``Page[Conversation]``,
    ``SearchResults``…) and raises what it raises (``ConversationNotFound`` for a 404 on a conversation,
    ``RateLimited`` with its ``retry_after``, ``InvalidInput`` with the ``fields`` the service named…), with the
    HTTP ``status``, ``code`` and ``request_id`` set on the exception. A ``get_*`` raises the ``NotFoundError``
    where the store's returns None (``get_latest_checkpoint`` and ``memory.get`` answer None, as the library's
    do). ``list_*`` return one page (pass ``next_cursor`` back as ``cursor``);
    ``iter_*`` walk every page. ``events`` streams a conversation's events; ``client.memory`` is the three-line
    memory API (``add``, ``search``…, keyed by your own user ids).

    Example::

        async with AsyncClient("http://127.0.0.1:8000", api_key=key) as client:
            user = await client.get_or_create_user_by_identity("discord", "81234")
            chat = await client.create_conversation(user.id, title="Lisbon")
            await client.add_message(chat.id, role="user", content="Find me a hotel near Alfama")

    Args:
        base_url: the service's address. Default: ``MNEMOSTORE_URL``, else ``http://127.0.0.1:8000`` (the port
            of ``MNEMOSTORE_SERVER_PORT`` when set, as ``mnemostore serve``).
        api_key: a tenant's API key, for everything but ``/v1/tenants``. Default: ``MNEMOSTORE_API_KEY``.
        admin_key: the service's admin key, for the tenant methods (``create_tenant``…). Default:
            ``MNEMOSTORE_ADMIN_API_KEY``.
        timeout: seconds (or an ``httpx.Timeout``) to connect, and to wait for each read and write.
        retries: how many times a failed request is sent again, where that is safe (reads, deletes by id,
            searches, appends with their idempotency key) and the failure is passing (a dropped connection,
            502/503/504, 429). 0: never.
        backoff, max_backoff: the wait before the first retry, doubled at each next one, at most
            ``max_backoff``; a ``Retry-After`` longer than that is waited instead, unless longer than
            ``max_retry_after``: then the error is raised at once.
        headers: more headers for every request.
        transport: the ``httpx`` transport to send with (a proxy's, a test's).
        sleep: how to wait between attempts, given seconds (default ``asyncio.sleep``).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        admin_key: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key=api_key,
            admin_key=admin_key,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            headers=headers,
            transport=transport,
            sleep=sleep,
        )
        self._memory = AsyncMemoryClient(self)

    @property
    def memory(self) -> AsyncMemoryClient:
        """The three-line memory API of the key's tenant (``/v1/memory``), as ``mnemostore.AsyncMemory``."""
        return self._memory

    @calls(ep.HEALTHZ)
    async def health(self) -> dict[str, Any]:
        """Liveness (``/healthz``, no key needed): ``{"status": "ok"}`` while the service answers."""
        data: dict[str, Any] = await self._json(ep.HEALTHZ)
        return data

    @calls(ep.READYZ)
    async def readiness(self) -> dict[str, Any]:
        """Readiness (``/readyz``, no key needed): ``ready`` (database reachable, schema at head), each check's
        status, the indexing backlog. Answers a service that is not ready too (``ready`` False)."""
        data: dict[str, Any] = await self._json(ep.READYZ, accept=frozenset({503}))
        return data
