"""``AsyncMemory``: an assistant's long-term memory in three lines, keyed by the caller's own user ids.

The facade adds no storage of its own: every call is one or a few calls of the tenant store it wraps (user ids map
to mnemostore users by external id), so what it writes is what the full API, the CLI and the HTTP service see.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Self, cast

from mnemostore.domain import Context, MemoryKind, MemoryRecord, MemoryVersion, NewMessage, Page
from mnemostore.errors import ConversationNotFound, InvalidInput, TenantAlreadyExists
from mnemostore.memory import TokenCounter
from mnemostore.search import ItemKind, SearchMode, SearchResults
from mnemostore.service.store_async import AsyncMnemoStore, AsyncTenantStore

__all__ = ["DEFAULT_TENANT", "AsyncMemory"]

log = logging.getLogger("mnemostore.memory")

DEFAULT_TENANT = "default"
# A user id no user has: a search for a user the store has never seen runs filtered on it, so it finds nothing
# yet reports the mode and retrievers it would use.
_NO_USER = uuid.UUID(int=0)


class AsyncMemory:
    """Long-term memory for an assistant: ``add``, ``search``, ``get``, ``get_all``, ``update``, ``delete``,
    ``delete_all``, ``history``, ``context``, with user ids of your own (``"alice"``, an email, your database's key).

    ``AsyncMemory()`` opens the embedded default (``MNEMOSTORE_DATABASE_URL``, else ``./mnemostore.db``). On first
    use it creates the schema of a database that has none (a database behind the code raises ``SchemaOutOfDate``:
    it never upgrades one by itself) and the tenant, named ``default`` unless ``tenant`` says otherwise. Each user
    id becomes a mnemostore user with that external id on its first ``add``. Everything else of the store is one
    attribute away: ``memory.tenant`` (the tenant's full API) and ``memory.store``.

    Example::

        async with AsyncMemory() as m:
            await m.add("I'm vegetarian", user_id="alice")
            hits = await m.search("what can alice eat?", user_id="alice")

    Args:
        database_url: ``sqlite:///path.db`` or ``postgresql://…`` (as ``AsyncMnemoStore``).
        tenant: the tenant's name (created when missing) or id (must exist).
        store: an open store to use instead of opening one; it is neither migrated nor closed by this object.
        settings: any other setting of ``AsyncMnemoStore`` (``embedder=``, ``redis_url=``, …).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        tenant: uuid.UUID | str = DEFAULT_TENANT,
        store: AsyncMnemoStore | None = None,
        **settings: Any,
    ) -> None:
        if store is not None and (database_url is not None or settings):
            raise InvalidInput("pass either an open store or a database URL and settings, not both")
        self._owns_store = store is None
        self.store: AsyncMnemoStore = store if store is not None else AsyncMnemoStore(database_url, **settings)
        self.tenant: AsyncTenantStore = self.store.tenant(tenant)
        self._tenant_given = tenant
        self._ready = False
        self._user_ids: dict[str, uuid.UUID] = {}
        if True:  # ASYNC
            self._lock: Any = asyncio.Lock()
        else:
            self._lock = threading.Lock()

    @classmethod
    def for_tenant(cls, tenant: AsyncTenantStore) -> Self:
        """The memory API of an existing tenant view (for instance the one an HTTP request is authorised for)."""
        memory = cls(store=tenant.store)
        memory.tenant = tenant
        memory._ready = True
        return memory

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the store this object opened (a store given to it stays open)."""
        if self._owns_store:
            await self.store.close()

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
        """Remember a fact, or a chat.

        A string becomes one memory of the user (merged into an existing memory that says the same thing, which
        keeps the old text as a version). A list of chat messages (``{"role": "user", "content": "…"}`` or
        ``NewMessage``) is appended to a conversation of the user, a new one unless ``conversation_id`` is given,
        and each message whose role is in ``roles`` (default: what the user said) also becomes a memory that
        links back to its message and belongs to the conversation. ``vector`` and ``model`` (a text only): its
        embedding, computed by you with that model (see ``AsyncTenantStore.store_memory``); ``conversation_id``
        with a text: the conversation the fact comes from.

        Returns:
            The memories written (or merged into), in order.

        Raises:
            InvalidInput: ``user_id`` is empty, or ``content`` is neither text nor a list of messages.
        """
        tenant = await self._open()
        uid = await self._user(user_id, create=True)
        assert uid is not None
        if isinstance(content, str):
            stored = await tenant.store_memory(
                content,
                user_id=uid,
                agent_id=agent_id,
                metadata=metadata,
                importance=importance,
                conversation_id=conversation_id,
                vector=vector,
                model=model,
            )
            return [stored]
        if vector is not None or model is not None:
            raise InvalidInput("vector= goes with a text: a chat's memories are embedded by the store")
        if not isinstance(content, Sequence) or not content:
            raise InvalidInput("content must be a text or a non-empty list of chat messages ({role, content})")
        chat = cast("Sequence[NewMessage | Mapping[str, Any]]", content)  # not a str: mypy cannot narrow that
        if conversation_id is None:
            conversation = await tenant.create_conversation(uid, title=_title(chat))
            conversation_id = conversation.id
        messages = await tenant.add_messages(conversation_id, chat)
        memories: list[MemoryRecord] = []
        for message in messages:
            if message.role.value not in roles:
                continue
            extra = {"role": message.role.value, "conversation_id": str(message.conversation_id)}
            stored = await tenant.store_memory(
                message.content,
                user_id=uid,
                agent_id=agent_id,
                metadata={**(metadata or {}), **extra},
                importance=importance,
                source_message_ids=[message.id],
                conversation_id=message.conversation_id,
            )
            if all(stored.id != m.id for m in memories):
                memories.append(stored)
        return memories

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
        """The user's memories that best answer ``query`` (or are nearest to ``vector``, of ``model``), best first.

        By meaning and by words (hybrid) when an embedder is installed, by words otherwise (``results.mode``
        says which); what was just added is found at once.
        """
        tenant = await self._open()
        uid = await self._user(user_id, create=False)
        return await tenant.search(
            query,
            vector=vector,
            model=model,
            mode=mode,
            kinds=[ItemKind.MEMORY],
            user_id=uid if uid is not None else _NO_USER,
            agent_id=agent_id,
            limit=limit,
            min_score=min_score,
        )

    async def get(self, memory_id: uuid.UUID | str) -> MemoryRecord | None:
        """The memory with this id, or None."""
        return await (await self._open()).get_memory(memory_id)

    async def get_all(
        self,
        *,
        user_id: str,
        agent_id: str | None = None,
        kind: MemoryKind | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        query: str | None = None,
    ) -> Page[MemoryRecord]:
        """The user's memories, most important first, ``limit`` at a time (pass ``next_cursor`` back as
        ``cursor`` for the next page); of one conversation with ``conversation_id``; with ``query``, the most
        relevant to it first (one page)."""
        tenant = await self._open()
        uid = await self._user(user_id, create=False)
        if uid is None:
            return Page(items=[], next_cursor=None)
        return await tenant.retrieve_memories(
            user_id=uid,
            agent_id=agent_id,
            kind=kind,
            limit=limit,
            cursor=cursor,
            conversation_id=conversation_id,
            query=query,
        )

    async def update(
        self, memory_id: uuid.UUID | str, content: str, *, metadata: Mapping[str, Any] | None = None
    ) -> MemoryRecord:
        """Replace a memory's text (and metadata, when given); the previous state is kept (``history``).

        Raises:
            MemoryNotFound: no memory has this id.
        """
        tenant = await self._open()
        if metadata is None:
            return await tenant.update_memory(memory_id, content=content)
        return await tenant.update_memory(memory_id, content=content, metadata=metadata)

    async def delete(self, memory_id: uuid.UUID | str) -> None:
        """Forget one memory, with its earlier versions.

        Raises:
            MemoryNotFound: no memory has this id.
        """
        await (await self._open()).delete_memory(memory_id)

    async def delete_all(self, *, user_id: str, agent_id: str | None = None) -> int:
        """Forget every memory of the user (with ``agent_id``: only those of that agent); returns how many.

        The user and their conversations stay: ``memory.tenant.erase_user`` removes everything of a user.
        """
        tenant = await self._open()
        uid = await self._user(user_id, create=False)
        if uid is None:
            return 0
        return await tenant.delete_memories(user_id=uid, agent_id=agent_id)

    async def history(self, memory_id: uuid.UUID | str) -> list[MemoryVersion]:
        """The earlier states of a memory, oldest first (the current one is ``get``).

        Raises:
            MemoryNotFound: no memory has this id.
        """
        return await (await self._open()).get_memory_history(memory_id)

    async def context(
        self,
        conversation_id: uuid.UUID | str,
        *,
        user_id: str,
        query: str | None = None,
        max_tokens: int = 2000,
        token_counter: TokenCounter | None = None,
    ) -> Context:
        """The context block for the assistant's next answer in a conversation of the user (one ``add`` of a chat
        started): its summaries, the user's memories most relevant to ``query`` (default: the newest thing the user
        said), relevant knowledge, and the newest messages, in at most ``max_tokens`` (see
        ``AsyncTenantStore.build_context``). ``context.text`` goes into the prompt as it is.

        Raises:
            ConversationNotFound: the conversation is not one of this user's.
        """
        tenant = await self._open()
        uid = await self._user(user_id, create=False)
        conversation = await tenant.get_conversation(conversation_id)
        if conversation is None or uid is None or conversation.user_id != uid:
            raise ConversationNotFound(conversation_id)
        return await tenant.build_context(conversation.id, query, max_tokens=max_tokens, token_counter=token_counter)

    async def _open(self) -> AsyncTenantStore:
        """The tenant view, after the one-time set-up: schema of a new database, the tenant."""
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    await self._set_up()
                    self._ready = True
        return self.tenant

    async def _set_up(self) -> None:
        if self._owns_store:
            status = await self.store.get_migration_status()
            if status.current is None:
                await self.store.migrate()
                log.info("created the mnemostore schema in %s", self.store.settings.redacted_url())
        given = self._tenant_given
        if isinstance(given, str) and not _is_uuid(given) and await self.store.get_tenant_by_name(given) is None:
            try:
                await self.store.create_tenant(given)
                log.info("created the tenant %r", given)
            except TenantAlreadyExists:
                pass  # created meanwhile by another process: use it
        await self.tenant.resolve()

    async def _user(self, user_id: str, *, create: bool) -> uuid.UUID | None:
        """The mnemostore id of the caller's user id (created by ``create``; None: no such user yet)."""
        if not isinstance(user_id, str) or not user_id.strip():
            raise InvalidInput(f"user_id must be your own non-empty id of the user (a string), got {user_id!r}")
        known = self._user_ids.get(user_id)
        if known is not None:
            return known
        tenant = self.tenant
        user = (
            await tenant.get_or_create_user_by_external_id(user_id)
            if create
            else await tenant.get_user_by_external_id(user_id)
        )
        if user is None:
            return None
        self._user_ids[user_id] = user.id
        return user.id


def _title(messages: Sequence[NewMessage | Mapping[str, Any]]) -> str | None:
    """The conversation's title: the start of its first message."""
    first = messages[0]
    text = first.content if isinstance(first, NewMessage) else first.get("content")
    return text[:80] if isinstance(text, str) and text.strip() else None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
