"""Users and their identities across channels."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from mnemostore.cache import (
    USER,
)
from mnemostore.domain import (
    Page,
    User,
    UserIdentity,
    new_id,
)
from mnemostore.errors import (
    ConflictError,
    DuplicateIdentity,
    UserNotFound,
)
from mnemostore.service import _validation as v
from mnemostore.service._inputs import UNSET, Unset, as_id, utc_now
from mnemostore.service._paging import id_cursor
from mnemostore.service._scope_async import AsyncTenantScope


class AsyncUsers(AsyncTenantScope):
    """The tenant's users: create, look up (by id, email, external id or channel identity), link identities,
    update, delete.
    """

    def _user_values(
        self,
        *,
        display_name: str | None,
        email: str | None,
        external_id: str | None,
        preferred_model: str | None,
        preferences: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        now = utc_now()
        return {
            "id": new_id(),
            "display_name": v.check_name(display_name, "display_name", max_len=200),
            "email": v.check_email(email),
            "external_id": v.check_name(external_id, "external_id", max_len=200),
            "preferred_model": v.check_name(preferred_model, "preferred_model", max_len=200),
            "preferences": self._json(preferences, "preferences"),
            "metadata": self._json(metadata, "metadata"),
            "created_at": now,
            "updated_at": now,
        }

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
            QuotaExceeded: the tenant is at its ``max_users``.
        """
        values = self._user_values(
            display_name=display_name,
            email=email,
            external_id=external_id,
            preferred_model=preferred_model,
            preferences=preferences,
            metadata=metadata,
        )
        try:
            async with self._tx(write=True) as uow:
                await self._charge(uow, users=1)
                return await uow.users.insert(values)
        except ConflictError as error:
            raise ConflictError(
                "another user of this tenant already has this email or external_id: look it up with "
                "get_user_by_email / get_user_by_external_id"
            ) from error

    async def get_user(self, user_id: uuid.UUID | str) -> User | None:
        """The user (read through the cache), or None."""
        uid = as_id(user_id, "user_id")

        async def load() -> User | None:
            async with self._tx() as uow:
                return await uow.users.get(uid)

        key = self._cache.keys.obj(self.tenant_id, "user", uid)
        return await self._cache.objects.cached(key, load, codec=USER, name="user")

    async def get_user_or_raise(self, user_id: uuid.UUID | str) -> User:
        """The user.

        Raises:
            UserNotFound: the tenant has no user with this id.
        """
        user = await self.get_user(user_id)
        if user is None:
            raise UserNotFound(user_id)
        return user

    async def get_user_by_email(self, email: str) -> User | None:
        """The tenant's user with this email, or None. The domain is matched in any case (emails are stored with
        it in lower case; a row stored before that is still found as written), the local part exactly."""
        v.check_text(email, "email")
        local, at, domain = email.rpartition("@")
        folded = f"{local}@{domain.lower()}" if at else email
        async with self._tx() as uow:
            found = await uow.users.get_by_email(folded)
            if found is None and folded != email:  # a row written before domains were folded
                found = await uow.users.get_by_email(email)
            return found

    async def get_user_by_external_id(self, external_id: str) -> User | None:
        """The tenant's user with this external id (your system's id for them), or None."""
        v.check_text(external_id, "external_id")
        async with self._tx() as uow:
            return await uow.users.get_by_external_id(external_id)

    async def get_user_by_identity(self, channel: str, channel_user_id: str) -> User | None:
        """The user behind a channel identity (read through the cache), or None."""
        v.check_text(channel, "channel")
        v.check_text(channel_user_id, "channel_user_id")

        async def load() -> User | None:
            async with self._tx() as uow:
                return await uow.users.get_by_identity(channel, channel_user_id)

        key = self._cache.keys.obj(self.tenant_id, "ident", channel, channel_user_id)
        return await self._cache.objects.cached(key, load, codec=USER, name="identity")

    def _user_keys(self, user_id: uuid.UUID, identities: Sequence[UserIdentity]) -> list[str]:
        keys = self._cache.keys
        return [
            keys.obj(self.tenant_id, "user", user_id),
            *(keys.obj(self.tenant_id, "ident", i.channel, i.channel_user_id) for i in identities),
        ]

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
        """The user behind a channel identity (a Discord id, a Telegram id…), created on first sight.

        Safe under concurrency: two simultaneous first messages from one identity make one user.
        """
        v.check_name(channel, "channel", max_len=50, required=True)
        v.check_name(channel_user_id, "channel_user_id", max_len=200, required=True)
        v.check_name(username, "username", max_len=200)
        for _attempt in range(3):
            existing = await self.get_user_by_identity(channel, channel_user_id)
            if existing is not None:
                return existing
            values = self._user_values(
                display_name=display_name or username,
                email=email,
                external_id=None,
                preferred_model=preferred_model,
                preferences=preferences,
                metadata=metadata,
            )
            try:
                async with self._tx(write=True) as uow:
                    await self._charge(uow, users=1)
                    user = await uow.users.insert(values)
                    await uow.users.add_identity(
                        {
                            "user_id": user.id,
                            "channel": channel,
                            "channel_user_id": channel_user_id,
                            "username": username,
                            "created_at": values["created_at"],
                        }
                    )
                    return user
            except ConflictError:
                # Another request created the identity (or took the email) between our read and write.
                if email is not None and await self.get_user_by_identity(channel, channel_user_id) is None:
                    raise
        raise ConflictError(f"could not create a user for {channel}:{channel_user_id} after 3 attempts: retry")

    async def get_or_create_user_by_email(self, email: str, **fields: Any) -> User:
        """The user with this email, created with ``fields`` if there is none; safe against a concurrent create
        (the loser of the race gets the winner's user).
        """
        for _attempt in range(3):
            user = await self.get_user_by_email(email)
            if user is not None:
                return user
            try:
                return await self.create_user(email=email, **fields)
            except ConflictError:
                continue
        raise ConflictError(f"could not create a user with email {email!r} after 3 attempts: retry")

    async def get_or_create_user_by_external_id(self, external_id: str, **fields: Any) -> User:
        """The user with this external id, created with ``fields`` if there is none; safe against a concurrent
        create (the loser of the race gets the winner's user).
        """
        for _attempt in range(3):
            user = await self.get_user_by_external_id(external_id)
            if user is not None:
                return user
            try:
                return await self.create_user(external_id=external_id, **fields)
            except ConflictError:
                continue
        raise ConflictError(f"could not create a user with external id {external_id!r} after 3 attempts: retry")

    async def link_identity(
        self, user_id: uuid.UUID | str, channel: str, channel_user_id: str, *, username: str | None = None
    ) -> UserIdentity:
        """Attach another channel identity to a user.

        Raises:
            DuplicateIdentity: the identity already belongs to a user (this one or another).
        """
        uid = as_id(user_id, "user_id")
        v.check_name(channel, "channel", max_len=50, required=True)
        v.check_name(channel_user_id, "channel_user_id", max_len=200, required=True)
        v.check_name(username, "username", max_len=200)
        async with self._tx(write=True) as uow:
            if await uow.users.get(uid) is None:
                raise UserNotFound(uid)
            owner = await uow.users.get_identity(channel, channel_user_id)
            if owner is not None:
                raise DuplicateIdentity(
                    f"{channel}:{channel_user_id} already belongs to user {owner.user_id}: unlink it there first"
                )
            return await uow.users.add_identity(
                {
                    "user_id": uid,
                    "channel": channel,
                    "channel_user_id": channel_user_id,
                    "username": username,
                    "created_at": utc_now(),
                }
            )

    async def list_identities(self, user_id: uuid.UUID | str) -> list[UserIdentity]:
        """The user's identities on every channel (empty for an unknown user)."""
        async with self._tx() as uow:
            return await uow.users.identities(as_id(user_id, "user_id"))

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
        """Change the given fields (pass None to clear one); fields not passed stay as they are."""
        uid = as_id(user_id, "user_id")
        values: dict[str, Any] = {"updated_at": utc_now()}
        for name, value, max_len in (
            ("display_name", display_name, 200),
            ("email", email, 320),
            ("external_id", external_id, 200),
            ("preferred_model", preferred_model, 200),
        ):
            if isinstance(value, Unset):
                continue
            values[name] = v.check_email(value) if name == "email" else v.check_name(value, name, max_len=max_len)
        if not isinstance(preferences, Unset):
            values["preferences"] = self._json(preferences, "preferences")
        if not isinstance(metadata, Unset):
            values["metadata"] = self._json(metadata, "metadata")
        try:
            async with self._tx(write=True) as uow:
                user = await uow.users.update(uid, values)
                identities = await uow.users.identities(uid) if user is not None else []
        except ConflictError as error:
            raise ConflictError("another user of this tenant already has this email or external_id") from error
        if user is None:
            raise UserNotFound(uid)
        await self._cache.objects.invalidate(self.tenant_id, self._user_keys(uid, identities))
        return user

    async def delete_user(self, user_id: uuid.UUID | str) -> None:
        """Delete a user and everything they own: identities, conversations, messages, memories."""
        uid = as_id(user_id, "user_id")
        async with self._tx(write=True) as uow:
            convs, msgs, tokens, size = await uow.conversations.totals_for_user(uid)
            identities = await uow.users.identities(uid)
            conversation_ids = await uow.conversations.ids_for_user(uid)
            if not await uow.users.delete(uid):
                raise UserNotFound(uid)
            await self._charge(uow, users=-1, conversations=-convs, messages=-msgs, tokens=-tokens, storage_bytes=-size)
        await self._runtime.vectors_removed(self.tenant_id, owner_id=uid)
        sessions = [self._cache.keys.session(self.tenant_id, i.channel, i.channel_user_id) for i in identities]
        await self._cache.objects.invalidate(self.tenant_id, [*self._user_keys(uid, identities), *sessions])
        await self._cache.context.invalidate(self.tenant_id, conversation_ids, reset=True)

    async def list_users(self, *, limit: int = 100, cursor: str | None = None) -> Page[User]:
        """The tenant's users in id order, ``limit`` at a time; pass the page's ``next_cursor`` to get the next page."""
        v.check_limit(limit)
        after = id_cursor(cursor) if cursor else None
        async with self._tx() as uow:
            items = await uow.users.list(limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=str(items[-1].id) if more else None)
