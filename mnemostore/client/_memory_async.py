"""``client.memory``: the three-line memory API over HTTP (``/v1/memory``), with ``mnemostore.Memory``'s names.

(async; ``_memory.py`` is generated from this file.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from mnemostore.client import _endpoints as ep
from mnemostore.client._base_async import AsyncConnection, walk
from mnemostore.client._codec import decode, decode_list, decode_page, decode_results, jsonable, present
from mnemostore.client._endpoints import calls
from mnemostore.client._memories_async import floats
from mnemostore.domain import Context, MemoryRecord, MemoryVersion, NewMessage, Page
from mnemostore.errors import MemoryNotFound
from mnemostore.search import SearchMode, SearchResults

__all__ = ["AsyncMemoryClient"]


class AsyncMemoryClient:
    """An assistant's long-term memory on the service, keyed by your own user ids (``"alice"``, an email…):
    ``add``, ``search``, ``get``, ``get_all``, ``update``, ``delete``, ``delete_all``, ``history``, as
    ``mnemostore.AsyncMemory`` on the API key's tenant. Reach it as ``client.memory``.

    Example::

        async with AsyncClient(api_key=key) as client:
            await client.memory.add("I'm vegetarian", user_id="alice")
            hits = await client.memory.search("what can alice eat?", user_id="alice")
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    @calls(ep.MEMORY_ADD)
    async def add(
        self,
        content: str | Sequence[NewMessage | Mapping[str, Any]],
        *,
        user_id: str,
        agent_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float = 0.5,
        conversation_id: uuid.UUID | str | None = None,
        roles: Sequence[str] = ("user",),
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> list[MemoryRecord]:
        """Remember a fact, or a chat: a list of messages (``{"role": "user", "content": "…"}`` or
        ``NewMessage``) is stored as a conversation (a new one unless ``conversation_id``), and each message of
        ``roles`` also becomes a memory. The user is created on first use.

        Returns:
            The memories written, or merged into (a near-duplicate updates the memory it repeats).
        """
        body = present(
            user_id=user_id,
            agent_id=agent_id,
            metadata=metadata,
            importance=importance,
            conversation_id=conversation_id,
            roles=list(roles),
        )
        if vector is not None:
            body["vector"] = floats(vector)
        if model is not None:
            body["model"] = model
        if isinstance(content, str):
            body["content"] = content
        else:
            body["messages"] = [_chat_message(message) for message in content]
        return decode_list(MemoryRecord, await self._connection._json(ep.MEMORY_ADD, body=body))

    @calls(ep.MEMORY_SEARCH)
    async def search(
        self,
        query: str | None = None,
        *,
        user_id: str,
        agent_id: str | None = None,
        limit: int = 10,
        min_score: float | None = None,
        mode: SearchMode | str = SearchMode.AUTO,
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> SearchResults:
        """The user's memories that best answer ``query``, best first (``results.mode`` says how they were found)."""
        body = present(query=query, user_id=user_id, agent_id=agent_id, limit=limit, min_score=min_score, mode=mode)
        if query is None:
            del body["query"]
        if vector is not None:
            body["vector"] = floats(vector)
        if model is not None:
            body["model"] = model
        return decode_results(await self._connection._json(ep.MEMORY_SEARCH, body=body))

    @calls(ep.MEMORY_CONTEXT)
    async def context(
        self, conversation_id: uuid.UUID | str, *, user_id: str, query: str | None = None, max_tokens: int = 2000
    ) -> Context:
        """The context block for the next answer in a conversation of the user, in at most ``max_tokens`` tokens
        (counted by the service's offline estimate; see ``AsyncMemory.context``).

        Raises:
            ConversationNotFound: the conversation is not one of this user's.
        """
        body = present(conversation_id=conversation_id, user_id=user_id, query=query, max_tokens=max_tokens)
        return decode(Context, await self._connection._json(ep.MEMORY_CONTEXT, body=body))

    @calls(ep.MEMORY_GET)
    async def get(self, memory_id: uuid.UUID | str) -> MemoryRecord | None:
        """The memory with this id, or None."""
        try:
            data = await self._connection._json(ep.MEMORY_GET, path={"memory_id": memory_id})
        except MemoryNotFound:
            return None
        return decode(MemoryRecord, data)

    @calls(ep.MEMORY_GET_ALL)
    async def get_all(
        self,
        *,
        user_id: str,
        agent_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        query: str | None = None,
    ) -> Page[MemoryRecord]:
        """One page of the user's memories, most important first; pass ``next_cursor`` back as ``cursor``."""
        params = {
            "user_id": user_id,
            "agent_id": agent_id,
            "limit": limit,
            "cursor": cursor,
            "conversation_id": None if conversation_id is None else str(conversation_id),
            "query": query,
        }
        return decode_page(MemoryRecord, await self._connection._json(ep.MEMORY_GET_ALL, params=params))

    @calls(ep.MEMORY_GET_ALL)
    def iter_all(
        self, *, user_id: str, agent_id: str | None = None, page_size: int = 100
    ) -> AsyncIterator[MemoryRecord]:
        """Every memory of the user, most important first, each once."""
        return walk(lambda cursor: self.get_all(user_id=user_id, agent_id=agent_id, limit=page_size, cursor=cursor))

    @calls(ep.MEMORY_UPDATE)
    async def update(
        self, memory_id: uuid.UUID | str, content: str, *, metadata: Mapping[str, Any] | None = None
    ) -> MemoryRecord:
        """Replace a memory's text (and metadata, when given); the previous state is kept (``history``).

        Raises:
            MemoryNotFound: no memory has this id.
        """
        body = present(content=content, metadata=metadata)
        path = {"memory_id": memory_id}
        return decode(MemoryRecord, await self._connection._json(ep.MEMORY_UPDATE, path=path, body=body))

    @calls(ep.MEMORY_DELETE)
    async def delete(self, memory_id: uuid.UUID | str) -> None:
        """Forget one memory, with its earlier versions.

        Raises:
            MemoryNotFound: no memory has this id.
        """
        await self._connection._send(ep.MEMORY_DELETE, path={"memory_id": memory_id})

    @calls(ep.MEMORY_DELETE_ALL)
    async def delete_all(self, *, user_id: str, agent_id: str | None = None) -> int:
        """Forget every memory of the user (with ``agent_id``: of that agent); returns how many. The user and
        their conversations stay."""
        data = await self._connection._json(ep.MEMORY_DELETE_ALL, params={"user_id": user_id, "agent_id": agent_id})
        return int(data["deleted"])

    @calls(ep.MEMORY_HISTORY)
    async def history(self, memory_id: uuid.UUID | str) -> list[MemoryVersion]:
        """The earlier states of a memory, oldest first (the current one is ``get``).

        Raises:
            MemoryNotFound: no memory has this id.
        """
        return decode_list(
            MemoryVersion, await self._connection._json(ep.MEMORY_HISTORY, path={"memory_id": memory_id})
        )


def _chat_message(message: NewMessage | Mapping[str, Any]) -> Any:
    """A chat message as ``/v1/memory/add`` takes it (fields left at their defaults are not sent)."""
    data = jsonable(message)
    return {name: value for name, value in data.items() if value is not None} if isinstance(data, dict) else data
