"""Users and their channel identities: the client's part for ``/v1/users``.

(async; ``_users.py`` is generated from this file.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from mnemostore.client import _endpoints as ep
from mnemostore.client._base_async import AsyncConnection, walk
from mnemostore.client._codec import UNSET, Unset, decode, decode_list, decode_page, present
from mnemostore.client._endpoints import calls
from mnemostore.domain import Page, User, UserIdentity

__all__ = ["AsyncUsersApi"]


class AsyncUsersApi(AsyncConnection):
    """The tenant's users: create, resolve by channel identity, list, get, update, delete, identities."""

    @calls(ep.CREATE_USER)
    async def create_user(
        self,
        *,
        display_name: str | None = None,
        email: str | None = None,
        external_id: str | None = None,
        preferred_model: str | None = None,
        preferences: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> User:
        """Create a user.

        Raises:
            ConflictError: another user of this tenant has that email or external id.
            QuotaExceeded: the tenant's plan allows no more users.
        """
        body = present(
            display_name=display_name,
            email=email,
            external_id=external_id,
            preferred_model=preferred_model,
            preferences=preferences,
            metadata=metadata,
        )
        return decode(User, await self._json(ep.CREATE_USER, body=body))

    @calls(ep.RESOLVE_USER)
    async def get_or_create_user_by_identity(
        self,
        channel: str,
        channel_user_id: str,
        *,
        username: str | None = None,
        display_name: str | None = None,
        email: str | None = None,
        preferred_model: str | None = None,
        preferences: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> User:
        """The user behind a channel identity (a Discord id, a Telegram id…), created on first sight; the other
        fields are used only then. Two simultaneous first calls for one identity make one user."""
        body = present(
            channel=channel,
            channel_user_id=channel_user_id,
            username=username,
            display_name=display_name,
            email=email,
            preferred_model=preferred_model,
            preferences=preferences,
            metadata=metadata,
        )
        return decode(User, await self._json(ep.RESOLVE_USER, body=body))

    @calls(ep.LIST_USERS)
    async def list_users(self, *, limit: int = 100, cursor: str | None = None) -> Page[User]:
        """One page of the tenant's users, oldest first; pass ``next_cursor`` back as ``cursor``."""
        return decode_page(User, await self._json(ep.LIST_USERS, params={"limit": limit, "cursor": cursor}))

    @calls(ep.LIST_USERS)
    def iter_users(self, *, page_size: int = 100) -> AsyncIterator[User]:
        """Every user of the tenant, oldest first, each once, ``page_size`` per request."""
        return walk(lambda cursor: self.list_users(limit=page_size, cursor=cursor))

    @calls(ep.GET_USER)
    async def get_user(self, user_id: uuid.UUID | str) -> User:
        """A user.

        Raises:
            UserNotFound: no such user in this tenant.
        """
        return decode(User, await self._json(ep.GET_USER, path={"user_id": user_id}))

    @calls(ep.UPDATE_USER)
    async def update_user(
        self,
        user_id: uuid.UUID | str,
        *,
        display_name: str | Unset | None = UNSET,
        email: str | Unset | None = UNSET,
        external_id: str | Unset | None = UNSET,
        preferred_model: str | Unset | None = UNSET,
        preferences: Mapping[str, Any] | Unset = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
    ) -> User:
        """Change the given fields (pass None to clear one); fields not passed stay as they are.

        Raises:
            UserNotFound: no such user in this tenant.
            ConflictError: another user has that email or external id.
        """
        body = present(
            display_name=display_name,
            email=email,
            external_id=external_id,
            preferred_model=preferred_model,
            preferences=preferences,
            metadata=metadata,
        )
        return decode(User, await self._json(ep.UPDATE_USER, path={"user_id": user_id}, body=body))

    @calls(ep.DELETE_USER)
    async def delete_user(self, user_id: uuid.UUID | str) -> None:
        """Delete the user and everything they own: identities, conversations, messages, memories.

        Raises:
            UserNotFound: no such user in this tenant.
        """
        await self._send(ep.DELETE_USER, path={"user_id": user_id})

    @calls(ep.LIST_IDENTITIES)
    async def list_identities(self, user_id: uuid.UUID | str) -> list[UserIdentity]:
        """The user's channel identities.

        Raises:
            UserNotFound: no such user in this tenant.
        """
        return decode_list(UserIdentity, await self._json(ep.LIST_IDENTITIES, path={"user_id": user_id}))

    @calls(ep.LINK_IDENTITY)
    async def link_identity(
        self, user_id: uuid.UUID | str, channel: str, channel_user_id: str, *, username: str | None = None
    ) -> UserIdentity:
        """Attach another channel identity to the user.

        Raises:
            UserNotFound: no such user in this tenant.
            DuplicateIdentity: the identity belongs to a user already.
        """
        body = present(channel=channel, channel_user_id=channel_user_id, username=username)
        return decode(UserIdentity, await self._json(ep.LINK_IDENTITY, path={"user_id": user_id}, body=body))

    @calls(ep.RESOLVE_USER_BY_EMAIL)
    async def get_or_create_user_by_email(self, email: str, **fields: Any) -> User:
        """The user with this email, created with ``fields`` (display_name, external_id…) if there is none."""
        body = present(email=email, **fields)
        return decode(User, await self._json(ep.RESOLVE_USER_BY_EMAIL, body=body))

    @calls(ep.RESOLVE_USER_BY_EXTERNAL_ID)
    async def get_or_create_user_by_external_id(self, external_id: str, **fields: Any) -> User:
        """The user with this external id, created with ``fields`` (display_name, email…) if there is none."""
        body = present(external_id=external_id, **fields)
        return decode(User, await self._json(ep.RESOLVE_USER_BY_EXTERNAL_ID, body=body))

    @calls(ep.LOOKUP_USER)
    async def get_user_by_email(self, email: str) -> User:
        """The user with this email (the domain matched in any case).

        Raises:
            UserNotFound: no user of this tenant has it.
        """
        return decode(User, await self._json(ep.LOOKUP_USER, params={"email": email}))

    @calls(ep.LOOKUP_USER)
    async def get_user_by_external_id(self, external_id: str) -> User:
        """The user with this external id (your system's id for them).

        Raises:
            UserNotFound: no user of this tenant has it.
        """
        return decode(User, await self._json(ep.LOOKUP_USER, params={"external_id": external_id}))

    @calls(ep.LOOKUP_USER)
    async def get_user_by_identity(self, channel: str, channel_user_id: str) -> User:
        """The user behind a channel identity.

        Raises:
            UserNotFound: the identity is linked to no user of this tenant.
        """
        params = {"channel": channel, "channel_user_id": channel_user_id}
        return decode(User, await self._json(ep.LOOKUP_USER, params=params))

    @calls(ep.ERASE_USER)
    async def erase_user(self, user_id: uuid.UUID | str) -> dict[str, int]:
        """Erase the user everywhere; rows removed per table, ``users`` first.

        Raises:
            UserNotFound: no such user in this tenant.
        """
        data = await self._json(ep.ERASE_USER, path={"user_id": user_id})
        return {str(table): int(rows) for table, rows in data["removed"].items()}
