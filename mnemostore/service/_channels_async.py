"""Channels: configs, rate limits, sessions, presence, feature flags and the event stream."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from mnemostore.cache import (
    CHANNEL_CONFIG,
    AsyncEventSubscription,
    ChannelSession,
    RateLimitDecision,
    ratelimit,
)
from mnemostore.cache import flags as feature_flags
from mnemostore.domain import (
    ChannelConfig,
    Conversation,
    ConversationStatus,
)
from mnemostore.errors import (
    ConversationNotFound,
    RateLimited,
    TenantNotFound,
    UserNotFound,
)
from mnemostore.service import _validation as v
from mnemostore.service._conversations_async import AsyncConversations
from mnemostore.service._inputs import UNSET, Unset, as_id, utc_now
from mnemostore.service._users_async import AsyncUsers


class AsyncChannels(AsyncUsers, AsyncConversations):
    """Per-channel state of the tenant, mostly on the hot path (the cache)."""

    async def set_channel_config(
        self,
        channel: str,
        *,
        default_model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        rate_limits: Mapping[str, Any] | None = None,
    ) -> ChannelConfig:
        """Create or replace the tenant's configuration for one channel."""
        v.check_name(channel, "channel", max_len=50, required=True)
        values = {
            "channel": channel,
            "default_model": v.check_name(default_model, "default_model", max_len=200),
            "settings": self._json(settings, "settings"),
            "rate_limits": self._json(rate_limits, "rate_limits"),
            "updated_at": utc_now(),
        }
        async with self._tx(write=True) as uow:
            if await uow.tenants.get(self.tenant_id) is None:
                raise TenantNotFound(self.tenant_id)
            config = await uow.tenants.upsert_channel_config(values)
        await self._cache.objects.invalidate(self.tenant_id, [self._cache.keys.obj(self.tenant_id, "chan", channel)])
        return config

    async def get_channel_config(self, channel: str) -> ChannelConfig | None:
        """The channel's config (read through the cache), or None."""
        v.check_text(channel, "channel")

        async def load() -> ChannelConfig | None:
            async with self._tx() as uow:
                return await uow.tenants.get_channel_config(channel)

        key = self._cache.keys.obj(self.tenant_id, "chan", channel)
        return await self._cache.objects.cached(key, load, codec=CHANNEL_CONFIG, name="channel_config")

    async def rate_limit(
        self,
        *,
        user_id: uuid.UUID | str | None = None,
        api_key_id: uuid.UUID | str | None = None,
        client_ip: str | None = None,
        channel: str | None = None,
        cost: int = 1,
        raise_on_limit: bool = True,
    ) -> RateLimitDecision:
        """Count one request (of weight ``cost``) against every limit that applies to it, atomically.

        The limits come from the channel's ``rate_limits``, then the tenant's ``config["rate_limits"]``, then
        ``Settings.default_rate_limits``, per scope: ``tenant``, ``user``, ``api_key``, ``ip`` (see
        mnemostore.cache.ratelimit for the format). Either every applicable bucket is charged or none is.
        While Redis is unavailable the check runs on this process's own buckets and says so (``degraded``).

        Returns:
            The decision: remaining requests of the tightest limit, or the refusing limit and ``retry_after``.

        Raises:
            RateLimited: a limit is used up (unless ``raise_on_limit=False``: then the decision says so).
        """
        v.check_int(cost, "cost", minimum=1)
        if channel is not None:
            v.check_name(channel, "channel", max_len=50, required=True)
        tenant = await self._tenant_or_raise()
        config = await self.get_channel_config(channel) if channel is not None else None
        limits = ratelimit.resolve_limits(
            self._settings.default_rate_limits,
            tenant.config.get("rate_limits"),
            config.rate_limits if config is not None else None,
        )
        subjects: dict[str, object | None] = {
            "tenant": "all",
            "user": as_id(user_id, "user_id") if user_id is not None else None,
            "api_key": as_id(api_key_id, "api_key_id") if api_key_id is not None else None,
            "ip": v.check_name(client_ip, "client_ip", max_len=100),
        }
        scopes = [s for s in ratelimit.SCOPES if s in limits and subjects[s] is not None]
        if not scopes:
            return RateLimitDecision(allowed=True, scope=None, limit=None, window=None, remaining=None, retry_after=0)
        keys = self._cache.keys
        buckets = [
            keys.rate(self.tenant_id, channel if limits[s].source == "channel" else "*", s, subjects[s]) for s in scopes
        ]
        caps = [(float(limits[s].limit), limits[s].rate_per_ms) for s in scopes]
        deny, wait_ms, left, degraded = await self._cache.rate_limiter.acquire(buckets, caps, cost)
        if deny:
            scope = scopes[deny - 1]
            rule = limits[scope]
            decision = RateLimitDecision(
                allowed=False,
                scope=scope,
                limit=rule.limit,
                window=rule.window,
                remaining=max(0, left[deny - 1]),
                retry_after=wait_ms / 1000,
                degraded=degraded,
            )
            if raise_on_limit:
                raise RateLimited(scope, rule.limit, rule.window, decision.retry_after)
            return decision
        tightest = min(range(len(scopes)), key=lambda i: left[i])
        rule = limits[scopes[tightest]]
        return RateLimitDecision(
            allowed=True,
            scope=scopes[tightest],
            limit=rule.limit,
            window=rule.window,
            remaining=max(0, left[tightest]),
            retry_after=0,
            degraded=degraded,
        )

    async def get_session(self, channel: str, channel_user_id: str) -> ChannelSession | None:
        """The channel user's session, its sliding TTL renewed; rebuilt from the database when not cached.

        Rebuilt means: the user behind the identity, their most recently active conversation on this channel,
        and the model that conversation, the user or the channel config names. None when the identity is
        unknown.
        """
        v.check_name(channel, "channel", max_len=50, required=True)
        v.check_name(channel_user_id, "channel_user_id", max_len=200, required=True)
        session = await self._cache.sessions.get(self.tenant_id, channel, channel_user_id)
        if session is not None:
            return session
        user = await self.get_user_by_identity(channel, channel_user_id)
        if user is None:
            return None
        conversation: Conversation | None = None
        async with self._tx() as uow:
            for candidate in await uow.conversations.list_for_user(
                user.id, status=ConversationStatus.ACTIVE.value, limit=20, after=None
            ):
                if candidate.channel == channel:
                    conversation = candidate
                    break
        config = await self.get_channel_config(channel)
        model = (
            (conversation.model_override if conversation else None)
            or user.preferred_model
            or (config.default_model if config else None)
        )
        now = utc_now()
        session = ChannelSession(
            tenant_id=self.tenant_id,
            channel=channel,
            channel_user_id=channel_user_id,
            user_id=user.id,
            conversation_id=conversation.id if conversation else None,
            model=model,
            started_at=now,
            last_activity_at=now,
        )
        await self._cache.sessions.put(session)
        return session

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

        Args:
            user_id: needed only when the identity is not linked to a user yet.

        Raises:
            UserNotFound: no session, no linked identity and no ``user_id``.
            ConversationNotFound: ``conversation_id`` is not a conversation of this tenant.
        """
        session = await self.get_session(channel, channel_user_id)
        now = utc_now()
        if session is None or (user_id is not None and as_id(user_id, "user_id") != session.user_id):
            if user_id is None:
                raise UserNotFound(f"{channel}:{channel_user_id}", ": pass user_id= to start a session")
            uid = as_id(user_id, "user_id")
            if await self.get_user(uid) is None:
                raise UserNotFound(uid)
            session = ChannelSession(
                tenant_id=self.tenant_id,
                channel=channel,
                channel_user_id=channel_user_id,
                user_id=uid,
                conversation_id=None,
                model=None,
                started_at=now,
                last_activity_at=now,
            )
        if not isinstance(conversation_id, Unset):
            cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
            if cid is not None and cid != session.conversation_id and await self.get_conversation(cid) is None:
                raise ConversationNotFound(cid)
            session.conversation_id = cid
        if not isinstance(model, Unset):
            session.model = v.check_name(model, "model", max_len=200)
        if not isinstance(data, Unset):
            session.data = self._json(data, "data")
        session.last_activity_at = now
        await self._cache.sessions.put(session)
        await self._cache.presence.touch(self.tenant_id, channel, str(session.user_id))
        return session

    async def touch_session(self, channel: str, channel_user_id: str) -> ChannelSession | None:
        """Record activity: renew the session's TTL and last activity, and mark the user active on the channel."""
        session = await self.get_session(channel, channel_user_id)
        if session is None:
            return None
        session.last_activity_at = utc_now()
        await self._cache.sessions.put(session)
        await self._cache.presence.touch(self.tenant_id, channel, str(session.user_id))
        return session

    async def end_session(self, channel: str, channel_user_id: str) -> None:
        """Forget the session (the next ``get_session`` rebuilds one from the database)."""
        v.check_name(channel, "channel", max_len=50, required=True)
        v.check_name(channel_user_id, "channel_user_id", max_len=200, required=True)
        await self._cache.sessions.delete(self.tenant_id, channel, channel_user_id)

    async def mark_user_active(self, channel: str, user_id: uuid.UUID | str) -> None:
        """Count the user as active on the channel for the next ``presence_ttl_seconds``."""
        v.check_name(channel, "channel", max_len=50, required=True)
        await self._cache.presence.touch(self.tenant_id, channel, str(as_id(user_id, "user_id")))

    async def mark_user_inactive(self, channel: str, user_id: uuid.UUID | str) -> None:
        """Stop counting the user as active on the channel now, instead of when the presence TTL runs out."""
        v.check_name(channel, "channel", max_len=50, required=True)
        await self._cache.presence.leave(self.tenant_id, channel, str(as_id(user_id, "user_id")))

    async def active_users(self, channel: str) -> list[uuid.UUID]:
        """Users active on the channel within ``presence_ttl_seconds``, least recently active first."""
        v.check_name(channel, "channel", max_len=50, required=True)
        return [uuid.UUID(m) for m in await self._cache.presence.members(self.tenant_id, channel)]

    async def count_active_users(self, channel: str) -> int:
        """How many users were active on the channel within ``presence_ttl_seconds``."""
        v.check_name(channel, "channel", max_len=50, required=True)
        return await self._cache.presence.count(self.tenant_id, channel)

    async def _flag_value(self, flag: str, channel: str | None) -> Any:
        v.check_name(flag, "flag", max_len=200, required=True)
        if channel is not None:
            config = await self.get_channel_config(channel)
            flags = config.settings.get(feature_flags.FLAGS_FIELD) if config is not None else None
            if isinstance(flags, Mapping) and flag in flags:
                return flags[flag]
        tenant = await self._tenant_or_raise()
        flags = tenant.config.get(feature_flags.FLAGS_FIELD)
        if isinstance(flags, Mapping) and flag in flags:
            return flags[flag]
        return (await self._cache.flags.global_flags()).get(flag)

    async def feature_enabled(
        self, flag: str, *, user_id: uuid.UUID | str | None = None, channel: str | None = None
    ) -> bool:
        """Is ``flag`` on (for this user, when it is a percentage or variants flag)? Unknown flags are off.

        The channel's flags win over the tenant's, which win over the global ones (see mnemostore.cache.flags).
        """
        subject = str(as_id(user_id, "user_id")) if user_id is not None else None
        value = await self._flag_value(flag, channel)
        return feature_flags.is_enabled(value, tenant_id=self.tenant_id, flag=flag, subject=subject)

    async def feature_variant(self, flag: str, *, user_id: uuid.UUID | str, channel: str | None = None) -> str | None:
        """The user's A/B variant of ``flag``: deterministic and sticky (a hash of tenant, flag and user)."""
        subject = str(as_id(user_id, "user_id"))
        value = await self._flag_value(flag, channel)
        return feature_flags.variant(value, tenant_id=self.tenant_id, flag=flag, subject=subject)

    async def set_feature_flag(self, flag: str, value: Any, *, channel: str | None = None) -> None:
        """Set (None: remove) a flag of the tenant, or of one of its channels; effective at once everywhere.

        Stored in the tenant's ``config["feature_flags"]`` or the channel's ``settings["feature_flags"]``.
        """
        v.check_name(flag, "flag", max_len=200, required=True)
        if value is not None:
            value = feature_flags.check_flag(flag, value)
        if channel is None:
            async with self._tx() as uow:
                tenant = await uow.tenants.get(self.tenant_id)
            if tenant is None:
                raise TenantNotFound(self.tenant_id)
            config = dict(tenant.config)
            config[feature_flags.FLAGS_FIELD] = _set_flag(config.get(feature_flags.FLAGS_FIELD), flag, value)
            await self.store.update_tenant_config(self.tenant_id, config=config)
            return
        v.check_text(channel, "channel")
        async with self._tx() as uow:
            current = await uow.tenants.get_channel_config(channel)
        settings = dict(current.settings) if current is not None else {}
        settings[feature_flags.FLAGS_FIELD] = _set_flag(settings.get(feature_flags.FLAGS_FIELD), flag, value)
        await self.set_channel_config(
            channel,
            default_model=current.default_model if current is not None else None,
            settings=settings,
            rate_limits=current.rate_limits if current is not None else None,
        )

    async def subscribe_events(self) -> AsyncEventSubscription:
        """The tenant's events from now on: ``message.added``, ``memory.stored``, ``conversation.archived``.

        Use as ``async with await t.subscribe_events() as events: async for event in events: ...``. Delivery is
        at most once (pub/sub): after a gap, resynchronise from the database (history ``after=``).
        """
        return await self._cache.events.subscribe(self.tenant_id)


def _set_flag(flags: Any, flag: str, value: Any) -> dict[str, Any]:
    out = dict(flags) if isinstance(flags, Mapping) else {}
    if value is None:
        out.pop(flag, None)
    else:
        out[flag] = value
    return out
