"""Conversations, their messages, events and checkpoints: the client's part for ``/v1/conversations``,
``/v1/messages`` and ``/v1/checkpoints``.

(async; ``_conversations.py`` is generated from this file.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from mnemostore.client import _endpoints as ep
from mnemostore.client._base_async import AsyncConnection, new_idempotency_key, walk
from mnemostore.client._codec import UNSET, Unset, decode, decode_list, decode_page, jsonable, present
from mnemostore.client._endpoints import calls
from mnemostore.client._memories_async import floats
from mnemostore.client._stream_async import AsyncEventStream
from mnemostore.domain import (
    Checkpoint,
    Context,
    Conversation,
    ConversationStats,
    ConversationStatus,
    HistoryPage,
    MemoryRecord,
    MemoryTier,
    Message,
    NewMessage,
    Page,
    Role,
)
from mnemostore.errors import CheckpointNotFound

__all__ = ["AsyncConversationsApi"]


class AsyncConversationsApi(AsyncConnection):
    """Conversations (create, list, get, update, archive, delete, stats, export, import), messages (append with
    idempotency keys, history, get, delete), the live events, and the agent's checkpoints."""

    @calls(ep.CREATE_CONVERSATION)
    async def create_conversation(
        self,
        user_id: uuid.UUID | str,
        *,
        title: str | None = None,
        channel: str | None = None,
        model_override: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Conversation:
        """Start a conversation of one of the tenant's users.

        Raises:
            UserNotFound: no such user in this tenant.
            QuotaExceeded: the tenant's plan allows no more.
        """
        body = present(user_id=user_id, title=title, channel=channel, model_override=model_override, metadata=metadata)
        return decode(Conversation, await self._json(ep.CREATE_CONVERSATION, body=body))

    @calls(ep.LIST_CONVERSATIONS)
    async def list_conversations(
        self,
        user_id: uuid.UUID | str | None = None,
        *,
        status: ConversationStatus | str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Conversation]:
        """One page of conversations, most recently active first: a user's (any status, or ``status``), or
        without ``user_id`` the tenant's active ones; pass ``next_cursor`` back as ``cursor``."""
        params = {"user_id": user_id, "status": status, "limit": limit, "cursor": cursor}
        return decode_page(Conversation, await self._json(ep.LIST_CONVERSATIONS, params=params))

    @calls(ep.LIST_CONVERSATIONS)
    def iter_conversations(
        self,
        user_id: uuid.UUID | str | None = None,
        *,
        status: ConversationStatus | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Conversation]:
        """Every conversation ``list_conversations`` would page through, each once."""
        return walk(lambda cursor: self.list_conversations(user_id, status=status, limit=page_size, cursor=cursor))

    @calls(ep.GET_CONVERSATION)
    async def get_conversation(self, conversation_id: uuid.UUID | str) -> Conversation:
        """A conversation.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
        """
        return decode(Conversation, await self._json(ep.GET_CONVERSATION, path={"conversation_id": conversation_id}))

    @calls(ep.UPDATE_CONVERSATION)
    async def update_conversation(
        self,
        conversation_id: uuid.UUID | str,
        *,
        title: str | Unset | None = UNSET,
        status: ConversationStatus | str | Unset = UNSET,
        model_override: str | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
    ) -> Conversation:
        """Change the given fields (pass None to clear title or model_override); the others stay as they are.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
        """
        body = present(title=title, status=status, model_override=model_override, metadata=metadata)
        path = {"conversation_id": conversation_id}
        return decode(Conversation, await self._json(ep.UPDATE_CONVERSATION, path=path, body=body))

    @calls(ep.ARCHIVE_CONVERSATION)
    async def archive_conversation(self, conversation_id: uuid.UUID | str) -> Conversation:
        """Set the conversation's status to archived (its event stream gets ``conversation.archived``)."""
        path = {"conversation_id": conversation_id}
        return decode(Conversation, await self._json(ep.ARCHIVE_CONVERSATION, path=path))

    @calls(ep.DELETE_CONVERSATION)
    async def delete_conversation(self, conversation_id: uuid.UUID | str) -> None:
        """Delete the conversation with its messages, tool executions, checkpoints, events and metrics.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
        """
        await self._send(ep.DELETE_CONVERSATION, path={"conversation_id": conversation_id})

    @calls(ep.GET_CONVERSATION_STATS)
    async def get_conversation_stats(self, conversation_id: uuid.UUID | str) -> ConversationStats:
        """Messages by role, tokens, tool executions, checkpoints, first and last message times."""
        path = {"conversation_id": conversation_id}
        return decode(ConversationStats, await self._json(ep.GET_CONVERSATION_STATS, path=path))

    @calls(ep.EXPORT_CONVERSATION)
    async def export_conversation(self, conversation_id: uuid.UUID | str) -> dict[str, Any]:
        """The conversation and all its messages as one JSON document, for ``import_conversation``."""
        data: dict[str, Any] = await self._json(ep.EXPORT_CONVERSATION, path={"conversation_id": conversation_id})
        return data

    @calls(ep.IMPORT_CONVERSATION)
    async def import_conversation(
        self, data: Mapping[str, Any], *, user_id: uuid.UUID | str | None = None, new_ids: bool = False
    ) -> Conversation:
        """Recreate an exported conversation in this tenant (``user_id``: its owner here; ``new_ids``: fresh ids,
        for a copy next to the original).

        Raises:
            ConflictError: the conversation's id exists here already (pass ``new_ids=True``).
        """
        params = {"user_id": user_id, "new_ids": new_ids}
        return decode(Conversation, await self._json(ep.IMPORT_CONVERSATION, params=params, body=data))

    # -- messages ----------------------------------------------------------------------------------------------

    @calls(ep.APPEND_MESSAGE)
    async def add_message(
        self,
        conversation_id: uuid.UUID | str,
        *,
        role: Role | str,
        content: str,
        model: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        created_at: datetime | None = None,
        vector: Sequence[float] | None = None,
        vector_model: str | None = None,
    ) -> Message:
        """Append a message; the conversation's counters move in the same transaction.

        ``created_at``: when the message was said, for past messages being imported (timezone-aware; default now).

        The request carries an idempotency key (``idempotency_key``, else a new one for this call), so the
        client may send it again after a lost answer: the service returns the first attempt's message instead of
        appending a copy. Pass your own key to make retries of your own (after a crash) safe too.

        Raises:
            ConversationNotFound, InvalidInput (and subclasses), QuotaExceeded.
        """
        body = present(
            role=role,
            content=content,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            metadata=metadata,
            **({} if created_at is None else {"created_at": created_at}),
            **({} if vector is None else {"vector": floats(vector)}),
            **({} if vector_model is None else {"vector_model": vector_model}),
        )
        data = await self._json(
            ep.APPEND_MESSAGE,
            path={"conversation_id": conversation_id},
            body=body,
            headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
        )
        return decode(Message, data)

    @calls(ep.APPEND_MESSAGES)
    async def add_messages(
        self,
        conversation_id: uuid.UUID | str,
        new_messages: Sequence[NewMessage | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> list[Message]:
        """Append several messages in order, in one transaction (all or none).

        Every message carries an idempotency key, so the client may send the batch again after a lost answer:
        messages whose own key (``NewMessage.idempotency_key``) was given keep it; the others get
        ``<idempotency_key>#<index>`` (``idempotency_key`` or a new one for this call). Messages whose key was
        already used come back as the stored originals.
        """
        key = idempotency_key or new_idempotency_key()
        messages = [jsonable(m) for m in new_messages]
        for message in messages:
            if isinstance(message, dict) and message.get("idempotency_key") is None:
                message.pop("idempotency_key", None)
            for optional in ("created_at", "vector", "vector_model"):
                if isinstance(message, dict) and message.get(optional) is None:
                    message.pop(optional, None)
        own_keys = any(isinstance(m, dict) and "idempotency_key" in m for m in messages)
        headers: dict[str, str] = {}
        if own_keys:  # the service takes either the header or keys in the body: fill in the missing ones
            for index, message in enumerate(messages):
                if isinstance(message, dict):
                    message.setdefault("idempotency_key", f"{key}#{index}")
        else:
            headers["Idempotency-Key"] = key
        data = await self._json(
            ep.APPEND_MESSAGES, path={"conversation_id": conversation_id}, body={"messages": messages}, headers=headers
        )
        return decode_list(Message, data)

    @calls(ep.GET_HISTORY)
    async def get_conversation_history(
        self,
        conversation_id: uuid.UUID | str,
        *,
        limit: int = 50,
        before: str | None = None,
        after: str | None = None,
    ) -> HistoryPage:
        """Messages of a conversation in order: the newest ``limit``, or the page just older than ``before`` (a
        page's ``before``) or just newer than ``after`` (a page's ``after``, an event's ``id``).

        Raises:
            ConversationNotFound: no such conversation in this tenant.
        """
        params = {"limit": limit, "before": before, "after": after}
        data = await self._json(ep.GET_HISTORY, path={"conversation_id": conversation_id}, params=params)
        return decode(HistoryPage, data)

    @calls(ep.GET_HISTORY)
    async def iter_history(self, conversation_id: uuid.UUID | str, *, page_size: int = 100) -> AsyncIterator[Message]:
        """Every message of the conversation, newest first (as a chat scrolls back), each once, ``page_size``
        per request."""
        before: str | None = None
        while True:
            page = await self.get_conversation_history(conversation_id, limit=page_size, before=before)
            for message in reversed(page.messages):
                yield message
            if page.before is None:
                return
            before = page.before

    @calls(ep.GET_MESSAGE)
    async def get_message(self, message_id: uuid.UUID | str) -> Message:
        """A message.

        Raises:
            MessageNotFound: no such message in this tenant.
        """
        return decode(Message, await self._json(ep.GET_MESSAGE, path={"message_id": message_id}))

    @calls(ep.DELETE_MESSAGE)
    async def delete_message(self, message_id: uuid.UUID | str) -> None:
        """Delete one message (its sequence number is not reused).

        Raises:
            MessageNotFound: no such message in this tenant.
        """
        await self._send(ep.DELETE_MESSAGE, path={"message_id": message_id})

    @calls(ep.STREAM_EVENTS)
    def events(
        self,
        conversation_id: uuid.UUID | str,
        *,
        last_event_id: str | None = None,
        reconnect: bool = True,
        read_timeout: float = 60.0,
    ) -> AsyncEventStream:
        """The conversation's events as they happen (Server-Sent Events): ``message.added`` with the messages,
        ``conversation.archived``.

        Use it as ``async with client.events(conversation_id) as events: async for event in events: …``.
        ``last_event_id`` (an earlier event's ``id``) first replays what came after that event. The stream
        reconnects by itself after a dropped connection (``reconnect``), resuming after the last event received;
        ``read_timeout`` is how long a silent connection counts as alive (the service sends a keep-alive every
        15 s).
        """
        return AsyncEventStream(
            self, conversation_id, last_event_id=last_event_id, reconnect=reconnect, read_timeout=read_timeout
        )

    # -- checkpoints -------------------------------------------------------------------------------------------

    @calls(ep.CREATE_CHECKPOINT)
    async def create_checkpoint(
        self,
        conversation_id: uuid.UUID | str,
        *,
        iteration: int,
        state: Mapping[str, Any],
        name: str | None = None,
        context_summary: str | None = None,
        parent_id: uuid.UUID | str | Unset | None = UNSET,
    ) -> Checkpoint:
        """Save the agent's state at an iteration; ``parent_id`` not passed: it continues from the latest one."""
        body = present(
            iteration=iteration, state=state, name=name, context_summary=context_summary, parent_id=parent_id
        )
        path = {"conversation_id": conversation_id}
        return decode(Checkpoint, await self._json(ep.CREATE_CHECKPOINT, path=path, body=body))

    @calls(ep.LIST_CHECKPOINTS)
    async def list_checkpoints(
        self, conversation_id: uuid.UUID | str, *, limit: int = 100, cursor: str | None = None
    ) -> Page[Checkpoint]:
        """One page of the conversation's checkpoints, newest first (highest iteration, then latest saved)."""
        data = await self._json(
            ep.LIST_CHECKPOINTS, path={"conversation_id": conversation_id}, params={"limit": limit, "cursor": cursor}
        )
        return decode_page(Checkpoint, data)

    @calls(ep.LIST_CHECKPOINTS)
    def iter_checkpoints(self, conversation_id: uuid.UUID | str, *, page_size: int = 100) -> AsyncIterator[Checkpoint]:
        """Every checkpoint of the conversation, newest first, each once."""
        return walk(lambda cursor: self.list_checkpoints(conversation_id, limit=page_size, cursor=cursor))

    @calls(ep.GET_LATEST_CHECKPOINT)
    async def get_latest_checkpoint(self, conversation_id: uuid.UUID | str) -> Checkpoint | None:
        """The checkpoint to resume from, or None when the conversation has none yet.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
        """
        try:
            data = await self._json(ep.GET_LATEST_CHECKPOINT, path={"conversation_id": conversation_id})
        except CheckpointNotFound:
            return None
        return decode(Checkpoint, data)

    @calls(ep.GET_CHECKPOINT)
    async def get_checkpoint_by_id(self, checkpoint_id: uuid.UUID | str) -> Checkpoint:
        """A checkpoint.

        Raises:
            CheckpointNotFound: no such checkpoint in this tenant.
        """
        return decode(Checkpoint, await self._json(ep.GET_CHECKPOINT, path={"checkpoint_id": checkpoint_id}))

    @calls(ep.GET_CHECKPOINT_AT)
    async def get_checkpoint(self, conversation_id: uuid.UUID | str, *, iteration: int) -> Checkpoint:
        """The conversation's newest checkpoint saved at ``iteration``.

        Raises:
            CheckpointNotFound: none at that iteration (or no such conversation in this tenant).
        """
        path = {"conversation_id": conversation_id, "iteration": iteration}
        return decode(Checkpoint, await self._json(ep.GET_CHECKPOINT_AT, path=path))

    @calls(ep.PRUNE_CHECKPOINTS)
    async def prune_checkpoints(self, conversation_id: uuid.UUID | str, *, keep: int) -> int:
        """Delete all but the newest ``keep`` checkpoints of the conversation; returns how many were deleted.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
        """
        data = await self._json(ep.PRUNE_CHECKPOINTS, path={"conversation_id": conversation_id}, body={"keep": keep})
        return int(data["deleted"])

    # -- by external id, counting, clearing, consolidating ----------------------------------------------------

    @calls(ep.RESOLVE_CONVERSATION)
    async def get_or_create_conversation_by_external_id(
        self, external_id: str, *, user_id: uuid.UUID | str, **fields: Any
    ) -> Conversation:
        """The conversation with this external id (your session or thread key), created for ``user_id`` with
        ``fields`` (title, channel, model_override, metadata) if there is none."""
        body = present(external_id=external_id, user_id=user_id, **fields)
        return decode(Conversation, await self._json(ep.RESOLVE_CONVERSATION, body=body))

    @calls(ep.LOOKUP_CONVERSATION)
    async def get_conversation_by_external_id(self, external_id: str) -> Conversation:
        """The conversation with this external id.

        Raises:
            ConversationNotFound: no conversation of this tenant has it.
        """
        return decode(Conversation, await self._json(ep.LOOKUP_CONVERSATION, params={"external_id": external_id}))

    @calls(ep.COUNT_MESSAGES)
    async def count_messages(self, conversation_id: uuid.UUID | str) -> int:
        """How many messages the conversation holds.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
        """
        return int((await self._json(ep.COUNT_MESSAGES, path={"conversation_id": conversation_id}))["count"])

    @calls(ep.DELETE_MESSAGES)
    async def delete_messages(self, conversation_id: uuid.UUID | str) -> int:
        """Delete every message of the conversation (it stays); returns how many.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
        """
        return int((await self._json(ep.DELETE_MESSAGES, path={"conversation_id": conversation_id}))["deleted"])

    @calls(ep.CONSOLIDATE_CONVERSATION)
    async def consolidate_conversation(
        self,
        conversation_id: uuid.UUID | str,
        *,
        keep_recent: int = 20,
        min_messages: int = 2,
        tier: MemoryTier | str = MemoryTier.LONG_TERM,
        importance: float = 0.5,
        agent_id: str | None = None,
    ) -> MemoryRecord | None:
        """Summarise the older messages of the conversation (all but the newest ``keep_recent``) that no earlier
        segment covers into a memory segment of its user, with the service's summariser; None: nothing new.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
        """
        body = present(
            keep_recent=keep_recent, min_messages=min_messages, tier=tier, importance=importance, agent_id=agent_id
        )
        data = await self._json(ep.CONSOLIDATE_CONVERSATION, path={"conversation_id": conversation_id}, body=body)
        segment = data["segment"]
        return decode(MemoryRecord, segment) if segment is not None else None

    @calls(ep.BUILD_CONTEXT)
    async def build_context(
        self,
        conversation_id: uuid.UUID | str,
        query: str | None = None,
        *,
        max_tokens: int = 2000,
        memory_limit: int = 5,
        knowledge_limit: int = 3,
        message_limit: int = 50,
        min_recent: int = 2,
        mode: str = "auto",
    ) -> Context:
        """The conversation's context block for an agent, in at most ``max_tokens`` tokens (counted by the service's
        offline estimate): summaries, the memories and knowledge most relevant to ``query`` (default: the newest
        user message), the newest messages; ``omitted`` says what did not fit (see
        ``AsyncTenantStore.build_context``).

        Raises:
            ConversationNotFound: no such conversation in this tenant.
            InvalidInput: ``max_tokens`` too small for even a section header, or a limit out of range.
        """
        body = present(
            query=query,
            max_tokens=max_tokens,
            memory_limit=memory_limit,
            knowledge_limit=knowledge_limit,
            message_limit=message_limit,
            min_recent=min_recent,
            mode=mode,
        )
        data = await self._json(ep.BUILD_CONTEXT, path={"conversation_id": conversation_id}, body=body)
        return decode(Context, data)
