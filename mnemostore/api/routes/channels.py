"""``/v1/channels/{channel}``: a channel's config, its users' sessions and presence; rate-limit checks.

Sessions and presence live in the cache (Redis, or the process on the embedded default): a session expires after
``session_ttl_seconds`` without activity and is rebuilt from the database on the next read; a user counts as
active for ``presence_ttl_seconds`` after the last mark.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from mnemostore.cache import ChannelSession, RateLimitDecision
from mnemostore.domain import ChannelConfig
from mnemostore.errors import ChannelConfigNotFound, InvalidInput, SessionNotFound

from .._json_body import JsonRoute
from ..deps import TenantDep
from ..schemas import (
    ActiveUsersOut,
    ChannelConfigOut,
    ChannelConfigSet,
    CountOut,
    RateLimitCheck,
    RateLimitDecisionOut,
    SessionOut,
    SessionUpdate,
)
from ._common import no_content

__all__ = ["rate_limits", "router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/channels/{channel}", tags=["channels"])
rate_limits = APIRouter(route_class=JsonRoute, prefix="/v1/rate-limits", tags=["channels"])

Channel = Annotated[str, Path(min_length=1, max_length=50, description="the channel: discord, telegram, web…")]
ChannelUserId = Annotated[str, Path(min_length=1, max_length=200, description="the user's id on the channel")]


@router.put("", response_model=ChannelConfigOut)
async def set_channel_config(channel: Channel, body: ChannelConfigSet, t: TenantDep) -> ChannelConfig:
    """Create or replace the channel's config: default model, settings (its ``feature_flags`` too), rate limits."""
    return await t.set_channel_config(
        channel, default_model=body.default_model, settings=body.settings, rate_limits=body.rate_limits
    )


@router.get("", response_model=ChannelConfigOut)
async def get_channel_config(channel: Channel, t: TenantDep) -> ChannelConfig:
    """The channel's config (404 while none is set)."""
    config = await t.get_channel_config(channel)
    if config is None:
        raise ChannelConfigNotFound(channel, ": set one with PUT /v1/channels/{channel}")
    return config


def _no_session(channel: str, channel_user_id: str) -> SessionNotFound:
    return SessionNotFound(f"{channel}:{channel_user_id}", ": the identity is linked to no user of this tenant")


@router.get("/sessions/{channel_user_id}", response_model=SessionOut)
async def get_session(channel: Channel, channel_user_id: ChannelUserId, t: TenantDep) -> ChannelSession:
    """The channel user's session, its expiry renewed; rebuilt from the database when it expired (their user,
    most recent active conversation on the channel, and model). 404 when the identity is unknown."""
    session = await t.get_session(channel, channel_user_id)
    if session is None:
        raise _no_session(channel, channel_user_id)
    return session


@router.patch("/sessions/{channel_user_id}", response_model=SessionOut)
async def update_session(
    channel: Channel, channel_user_id: ChannelUserId, body: SessionUpdate, t: TenantDep
) -> ChannelSession:
    """Create or change the session and mark it active: the fields sent change, the others stay (``user_id`` is
    needed only for an identity not linked to a user yet)."""
    fields: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if fields.get("data", {}) is None:
        raise InvalidInput("data cannot be null: send an object, or leave it out to keep it")
    return await t.update_session(channel, channel_user_id, **fields)


@router.post("/sessions/{channel_user_id}/touch", response_model=SessionOut)
async def touch_session(channel: Channel, channel_user_id: ChannelUserId, t: TenantDep) -> ChannelSession:
    """Record activity: renew the session and mark its user active on the channel (404: no session can be made)."""
    session = await t.touch_session(channel, channel_user_id)
    if session is None:
        raise _no_session(channel, channel_user_id)
    return session


@router.delete("/sessions/{channel_user_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def end_session(channel: Channel, channel_user_id: ChannelUserId, t: TenantDep) -> Response:
    """Forget the session (ending one that is gone is fine): the next read rebuilds it from the database."""
    await t.end_session(channel, channel_user_id)
    return no_content()


@router.get("/active-users", response_model=ActiveUsersOut)
async def active_users(channel: Channel, t: TenantDep) -> dict[str, list[uuid.UUID]]:
    """Ids of the users active on the channel within the presence window, least recently active first."""
    return {"items": await t.active_users(channel)}


@router.get("/active-users/count", response_model=CountOut)
async def count_active_users(channel: Channel, t: TenantDep) -> dict[str, int]:
    """How many users were active on the channel within the presence window."""
    return {"count": await t.count_active_users(channel)}


@router.post("/active-users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def mark_user_active(channel: Channel, user_id: uuid.UUID, t: TenantDep) -> Response:
    """Count the user as active on the channel for the presence window from now."""
    await t.get_user_or_raise(user_id)
    await t.mark_user_active(channel, user_id)
    return no_content()


@router.delete("/active-users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def mark_user_inactive(channel: Channel, user_id: uuid.UUID, t: TenantDep) -> Response:
    """Stop counting the user as active on the channel now."""
    await t.get_user_or_raise(user_id)
    await t.mark_user_inactive(channel, user_id)
    return no_content()


@rate_limits.post("/check", response_model=RateLimitDecisionOut)
async def check_rate_limit(body: RateLimitCheck, t: TenantDep) -> RateLimitDecision:
    """Count one request of weight ``cost`` against the limits of the user and the channel (and the tenant's, as
    every request is), and answer whether it is allowed: 200 either way, ``allowed`` false with ``retry_after``
    when a limit is used up (this request itself is still served)."""
    if body.user_id is not None:
        await t.get_user_or_raise(body.user_id)
    return await t.rate_limit(user_id=body.user_id, channel=body.channel, cost=body.cost, raise_on_limit=False)
