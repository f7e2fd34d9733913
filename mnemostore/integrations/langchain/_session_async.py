"""One LangChain chat session of a tenant: the conversation whose external id is the session id (async; the LangChain
classes call it from their async methods).

The conversation is created on the first append, for the user whose external id is ``user_id`` (created too when
needed), so reading or clearing a session that never had a message writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from langchain_core.messages import BaseMessage

from mnemostore.domain import Message
from mnemostore.errors import ConflictError, ConversationNotFound, InvalidInput
from mnemostore.integrations.langchain._messages import from_langchain, to_langchain
from mnemostore.service.store_async import AsyncTenantStore

__all__ = ["PAGE_SIZE", "AsyncChatSession"]

# Messages read per history page (the store's largest).
PAGE_SIZE = 1000


class AsyncChatSession:
    """The messages of one session id of a tenant, as LangChain messages."""

    def __init__(self, tenant: AsyncTenantStore, session_id: str, user_id: str) -> None:
        for value, name in ((session_id, "session_id"), (user_id, "user_id")):
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"{name} must be a non-empty string, got {value!r}")
        self.tenant = tenant
        self.session_id = session_id
        self.user_id = user_id
        self._conversation_id: uuid.UUID | None = None

    async def messages(self) -> list[BaseMessage]:
        """Every message of the session, oldest first ([] for a session with none)."""
        conversation_id = await self._conversation(create=False)
        if conversation_id is None:
            return []
        try:
            return [to_langchain(message) for message in await self._all(conversation_id)]
        except ConversationNotFound:  # deleted since we found it
            self._conversation_id = None
            return []

    async def add(self, messages: Sequence[BaseMessage]) -> None:
        """Append the messages in order, in one transaction (all or none)."""
        rows = [from_langchain(message) for message in messages]
        if not rows:
            return
        conversation_id = await self._conversation(create=True)
        assert conversation_id is not None
        try:
            await self.tenant.add_messages(conversation_id, rows)
        except ConversationNotFound:  # deleted since we found it: the session starts again
            self._conversation_id = None
            conversation_id = await self._conversation(create=True)
            assert conversation_id is not None
            await self.tenant.add_messages(conversation_id, rows)

    async def clear(self) -> None:
        """Delete the session's messages; the conversation stays (see ``AsyncTenantStore.delete_messages``)."""
        conversation_id = await self._conversation(create=False)
        if conversation_id is None:
            return
        try:
            await self.tenant.delete_messages(conversation_id)
        except ConversationNotFound:
            self._conversation_id = None

    async def _all(self, conversation_id: uuid.UUID) -> list[Message]:
        """The conversation's messages in order, read newest page first (so that the pages meet exactly)."""
        page = await self.tenant.get_conversation_history(conversation_id, limit=PAGE_SIZE)
        pages = [page.messages]
        while page.before is not None:
            page = await self.tenant.get_conversation_history(conversation_id, limit=PAGE_SIZE, before=page.before)
            pages.append(page.messages)
        return [message for older in reversed(pages) for message in older]

    async def _conversation(self, *, create: bool) -> uuid.UUID | None:
        """The session's conversation id (created by ``create``; None when there is none yet)."""
        if self._conversation_id is not None:
            return self._conversation_id
        conversation = await self.tenant.get_conversation_by_external_id(self.session_id)
        if conversation is None and not create:
            return None
        if conversation is None:
            user = await self.tenant.get_or_create_user_by_external_id(self.user_id)
            conversation = await self.tenant.get_or_create_conversation_by_external_id(
                self.session_id, user_id=user.id, channel="langchain"
            )
            owner: uuid.UUID | None = user.id
        else:
            found = await self.tenant.get_user_by_external_id(self.user_id)
            owner = found.id if found is not None else None
        if conversation.user_id != owner:
            raise ConflictError(
                f"session {self.session_id!r} is a conversation of another user than {self.user_id!r}: pass its "
                "owner's id as user_id, or use another session id"
            )
        self._conversation_id = conversation.id
        return conversation.id
