"""Channels and feature flags: the client's part for ``/v1/channels``, ``/v1/rate-limits``, ``/v1/feature-flags``
and ``/v1/admin/feature-flags``.

(async; ``_channels.py`` is generated from this file.)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from mnemostore.cache import ChannelSession, RateLimitDecision
from mnemostore.client import _endpoints as ep
from mnemostore.client._base_async import AsyncConnection
from mnemostore.client._codec import UNSET, Unset, decode, present
from mnemostore.client._endpoints import calls
from mnemostore.domain import ChannelConfig
from mnemostore.errors import RateLimited

__all__ = ["AsyncChannelsApi"]


class AsyncChannelsApi(AsyncConnection):
    """A channel's config, its users' sessions and presence, rate-limit checks, and feature flags."""

    @calls(ep.SET_CHANNEL_CONFIG)
    async def set_channel_config(
        self,
        channel: str,
        *,
        default_model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        rate_limits: Mapping[str, Any] | None = None,
    ) -> ChannelConfig:
        """Create or replace the tenant's configuration for one channel (a field left out is cleared)."""
        body = present(default_model=default_model, settings=settings, rate_limits=rate_limits)
        return decode(ChannelConfig, await self._json(ep.SET_CHANNEL_CONFIG, path={"channel": channel}, body=body))

    @calls(ep.GET_CHANNEL_CONFIG)
    async def get_channel_config(self, channel: str) -> ChannelConfig:
        """The channel's config.

        Raises:
            ChannelConfigNotFound: none is set for this channel.
        """
        return decode(ChannelConfig, await self._json(ep.GET_CHANNEL_CONFIG, path={"channel": channel}))

    @calls(ep.GET_SESSION)
    async def get_session(self, channel: str, channel_user_id: str) -> ChannelSession:
        """The channel user's session, its expiry renewed (rebuilt from the database when it expired).

        Raises:
            SessionNotFound: the identity is linked to no user of this tenant.
        """
        path = {"channel": channel, "channel_user_id": channel_user_id}
        return decode(ChannelSession, await self._json(ep.GET_SESSION, path=path))

    @calls(ep.UPDATE_SESSION)
    async def update_session(
        self,
        channel: str,
        channel_user_id: str,
        *,
        user_id: uuid.UUID | str | None = None,
        conversation_id: uuid.UUID | str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
        data: Mapping[str, Any] | Unset = UNSET,
    ) -> ChannelSession:
        """Create or change a channel session and mark it active now (fields not passed stay as they are).

        Raises:
            UserNotFound: no session, no linked identity and no ``user_id``.
            ConversationNotFound: ``conversation_id`` is not a conversation of this tenant.
        """
        body = present(conversation_id=conversation_id, model=model, data=data)
        if user_id is not None:
            body["user_id"] = str(user_id)
        path = {"channel": channel, "channel_user_id": channel_user_id}
        return decode(ChannelSession, await self._json(ep.UPDATE_SESSION, path=path, body=body))

    @calls(ep.TOUCH_SESSION)
    async def touch_session(self, channel: str, channel_user_id: str) -> ChannelSession:
        """Record activity: renew the session and mark its user active on the channel.

        Raises:
            SessionNotFound: the identity is linked to no user of this tenant.
        """
        path = {"channel": channel, "channel_user_id": channel_user_id}
        return decode(ChannelSession, await self._json(ep.TOUCH_SESSION, path=path))

    @calls(ep.END_SESSION)
    async def end_session(self, channel: str, channel_user_id: str) -> None:
        """Forget the session (the next read rebuilds one from the database); ending one that is gone is fine."""
        await self._send(ep.END_SESSION, path={"channel": channel, "channel_user_id": channel_user_id})

    @calls(ep.MARK_USER_ACTIVE)
    async def mark_user_active(self, channel: str, user_id: uuid.UUID | str) -> None:
        """Count the user as active on the channel for the service's presence window.

        Raises:
            UserNotFound: no such user in this tenant.
        """
        await self._send(ep.MARK_USER_ACTIVE, path={"channel": channel, "user_id": user_id})

    @calls(ep.MARK_USER_INACTIVE)
    async def mark_user_inactive(self, channel: str, user_id: uuid.UUID | str) -> None:
        """Stop counting the user as active on the channel now.

        Raises:
            UserNotFound: no such user in this tenant.
        """
        await self._send(ep.MARK_USER_INACTIVE, path={"channel": channel, "user_id": user_id})

    @calls(ep.ACTIVE_USERS)
    async def active_users(self, channel: str) -> list[uuid.UUID]:
        """Users active on the channel within the presence window, least recently active first."""
        data = await self._json(ep.ACTIVE_USERS, path={"channel": channel})
        return [uuid.UUID(item) for item in data["items"]]

    @calls(ep.COUNT_ACTIVE_USERS)
    async def count_active_users(self, channel: str) -> int:
        """How many users were active on the channel within the presence window."""
        return int((await self._json(ep.COUNT_ACTIVE_USERS, path={"channel": channel}))["count"])

    @calls(ep.CHECK_RATE_LIMIT)
    async def rate_limit(
        self,
        *,
        user_id: uuid.UUID | str | None = None,
        channel: str | None = None,
        cost: int = 1,
        raise_on_limit: bool = True,
    ) -> RateLimitDecision:
        """Count one request of weight ``cost`` against the limits of the user and the channel (and the tenant).

        Raises:
            RateLimited: a limit is used up (unless ``raise_on_limit=False``: then the decision says so).
        """
        body = present(user_id=user_id, channel=channel, cost=cost)
        decision = decode(RateLimitDecision, await self._json(ep.CHECK_RATE_LIMIT, body=body))
        if raise_on_limit and not decision.allowed:
            assert decision.scope is not None and decision.limit is not None and decision.window is not None
            raise RateLimited(decision.scope, decision.limit, decision.window, decision.retry_after)
        return decision

    # -- feature flags -----------------------------------------------------------------------------------------

    async def _flag(self, flag: str, user_id: uuid.UUID | str | None, channel: str | None) -> dict[str, Any]:
        params = {"user_id": user_id, "channel": channel}
        data: dict[str, Any] = await self._json(ep.GET_FEATURE_FLAG, path={"flag": flag}, params=params)
        return data

    @calls(ep.GET_FEATURE_FLAG)
    async def feature_enabled(
        self, flag: str, *, user_id: uuid.UUID | str | None = None, channel: str | None = None
    ) -> bool:
        """Is ``flag`` on (for this user, when it is a percentage or variants flag)? Unknown flags are off."""
        return bool((await self._flag(flag, user_id, channel))["enabled"])

    @calls(ep.GET_FEATURE_FLAG)
    async def feature_variant(self, flag: str, *, user_id: uuid.UUID | str, channel: str | None = None) -> str | None:
        """The user's A/B variant of ``flag`` (None: not a variants flag, or off)."""
        variant = (await self._flag(flag, user_id, channel))["variant"]
        return str(variant) if variant is not None else None

    @calls(ep.SET_FEATURE_FLAG)
    async def set_feature_flag(self, flag: str, value: Any, *, channel: str | None = None) -> None:
        """Set (None: remove) a flag of the tenant, or of one of its channels; effective at once everywhere."""
        await self._send(ep.SET_FEATURE_FLAG, path={"flag": flag}, body=present(value=value, channel=channel))

    @calls(ep.DELETE_FEATURE_FLAG)
    async def delete_feature_flag(self, flag: str, *, channel: str | None = None) -> None:
        """Remove a flag of the tenant, or of one of its channels (``set_feature_flag(flag, None)``)."""
        await self._send(ep.DELETE_FEATURE_FLAG, path={"flag": flag}, params={"channel": channel})

    @calls(ep.SET_GLOBAL_FEATURE_FLAG)
    async def set_global_feature_flag(self, flag: str, value: Any) -> None:
        """Set (None: remove) a global flag, for every tenant that does not set it (admin key)."""
        await self._send(ep.SET_GLOBAL_FEATURE_FLAG, path={"flag": flag}, body={"value": value})

    @calls(ep.DELETE_GLOBAL_FEATURE_FLAG)
    async def delete_global_feature_flag(self, flag: str) -> None:
        """Remove the run-time override of a global flag (admin key)."""
        await self._send(ep.DELETE_GLOBAL_FEATURE_FLAG, path={"flag": flag})
