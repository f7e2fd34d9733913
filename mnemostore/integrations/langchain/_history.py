"""``MnemostoreChatMessageHistory``: a LangChain chat history kept as a mnemostore conversation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Self

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage
from langchain_core.runnables.config import run_in_executor

from mnemostore.errors import ConfigurationError, InvalidInput
from mnemostore.integrations.langchain._session import ChatSession
from mnemostore.integrations.langchain._session_async import AsyncChatSession
from mnemostore.integrations.langchain._setup import DEFAULT_TENANT, open_tenant
from mnemostore.service.store import MnemoStore, TenantStore
from mnemostore.service.store_async import AsyncTenantStore

__all__ = ["DEFAULT_USER", "MnemostoreChatMessageHistory"]

# The user that owns the sessions of a caller who names none.
DEFAULT_USER = "langchain"


class MnemostoreChatMessageHistory(BaseChatMessageHistory):
    """The messages of one session, kept as the mnemostore conversation whose ``external_id`` is the session id.

    Built on a tenant view: a ``TenantStore`` (every method works; the async ones run it on a worker thread) or an
    ``AsyncTenantStore`` (the async methods, ``aget_messages``, ``aadd_messages``, ``aclear``: the sync ones raise
    ``ConfigurationError``)::

        history = MnemostoreChatMessageHistory(store.tenant("acme"), session_id="s1", user_id="alice")

    The conversation belongs to the user whose external id is ``user_id`` (your own id of them, as
    ``mnemostore.Memory`` takes it; default ``"langchain"``) and is created, with the user, on the first append:
    reading or clearing a session that has no message writes nothing. A session id that is a conversation of
    another user raises ``ConflictError``. ``add_messages`` appends in one transaction; ``messages`` reads every
    message in order (the store pages through the history); ``clear`` deletes the messages and keeps the
    conversation (as LangChain's PostgreSQL history deletes the session's rows and nothing else). Messages keep
    what LangChain knows of them (type, id, name, tool calls, metadata), so they read back equal.
    """

    def __init__(self, tenant: TenantStore | AsyncTenantStore, session_id: str, *, user_id: str = DEFAULT_USER) -> None:
        self._sync: ChatSession | None = None
        self._async: AsyncChatSession | None = None
        if isinstance(tenant, AsyncTenantStore):
            self._async = AsyncChatSession(tenant, session_id, user_id)
        elif isinstance(tenant, TenantStore):
            self._sync = ChatSession(tenant, session_id, user_id)
        else:
            raise InvalidInput(
                f"a chat history is built on a tenant view (store.tenant(...)), got {type(tenant).__name__}"
            )
        self.session_id = session_id
        self.user_id = user_id
        self._owned: MnemoStore | None = None

    @classmethod
    def from_url(
        cls,
        database_url: str | None,
        session_id: str,
        *,
        tenant: uuid.UUID | str = DEFAULT_TENANT,
        user_id: str = DEFAULT_USER,
        **settings: Any,
    ) -> Self:
        """The session's history in the database at ``database_url`` (None: ``MNEMOSTORE_DATABASE_URL``, else
        ``./mnemostore.db``), in ``tenant`` (a name, created when missing, or an id). A new database gets the
        schema. The history owns the store it opens: ``close()`` it (or use it in a ``with`` block).

        Args:
            settings: any other setting of ``MnemoStore`` (``redis_url=``, ``embedder=``, …).
        """
        store, view = open_tenant(database_url, tenant, **settings)
        try:
            history = cls(view, session_id, user_id=user_id)
        except BaseException:
            store.close()
            raise
        history._owned = store
        return history

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]  # the base declares an attribute
        """Every message of the session, oldest first."""
        return self._session().messages()

    async def aget_messages(self) -> list[BaseMessage]:
        """Every message of the session, oldest first."""
        if self._async is not None:
            return await self._async.messages()
        return await run_in_executor(None, self._session().messages)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append the messages in order, in one transaction (all or none)."""
        self._session().add(messages)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append the messages in order, in one transaction (all or none)."""
        if self._async is not None:
            await self._async.add(messages)
        else:
            await run_in_executor(None, self._session().add, messages)

    def clear(self) -> None:
        """Delete the session's messages (the conversation stays, empty)."""
        self._session().clear()

    async def aclear(self) -> None:
        """Delete the session's messages (the conversation stays, empty)."""
        if self._async is not None:
            await self._async.clear()
        else:
            await run_in_executor(None, self._session().clear)

    def close(self) -> None:
        """Close the store that ``from_url`` opened (a tenant view given to the constructor stays open)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(session_id={self.session_id!r}, user_id={self.user_id!r})"

    def _session(self) -> ChatSession:
        if self._sync is None:
            raise ConfigurationError(
                "this chat history is built on an AsyncTenantStore: use its async methods (aget_messages, "
                "aadd_messages, aclear) or build it on a TenantStore (MnemoStore(...).tenant(...))"
            )
        return self._sync
