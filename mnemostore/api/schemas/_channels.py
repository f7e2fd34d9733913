"""Bodies of channels: configs, sessions, presence, rate-limit checks and feature flags."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mnemostore.api.schemas._common import (
    JsonObject,
    JsonValue,
    Name50,
    Name200,
    _In,
    _Out,
)

FLAG_VALUE = 'true/false; a percentage of users (0-100); or {"variants": {"control": 50, "treatment": 50}}'


class ChannelConfigSet(_In):
    """The channel's whole configuration (replaced, not merged): a field left out is cleared."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "default_model": "gpt-4o-mini",
                    "settings": {"greeting": "Hi!"},
                    "rate_limits": {"user": "20/minute"},
                }
            ]
        }
    )

    default_model: Name200 | None = None
    settings: JsonObject | None = None
    rate_limits: JsonObject | None = Field(
        default=None, description='per scope, e.g. {"user": "20/minute"} (see mnemostore.cache.ratelimit)'
    )


class ChannelConfigOut(_Out):
    tenant_id: uuid.UUID
    channel: str
    default_model: str | None
    settings: dict[str, Any]
    rate_limits: dict[str, Any]
    updated_at: datetime


class SessionUpdate(_In):
    """Only the fields sent change (null clears ``conversation_id`` or ``model``); the session is marked active."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f13", "model": "gpt-4o", "data": {"step": "checkout"}}
            ]
        }
    )

    user_id: uuid.UUID | None = Field(
        default=None, description="needed only when the channel identity is not linked to a user yet"
    )
    conversation_id: uuid.UUID | None = None
    model: Name200 | None = None
    data: JsonObject | None = None


class SessionOut(_Out):
    """Where a channel user is: their user, current conversation and model, and when they were last active."""

    tenant_id: uuid.UUID
    channel: str
    channel_user_id: str
    user_id: uuid.UUID
    conversation_id: uuid.UUID | None
    model: str | None
    started_at: datetime
    last_activity_at: datetime
    data: dict[str, Any]


class ActiveUsersOut(BaseModel):
    """Users active on the channel within the presence window, least recently active first."""

    items: list[uuid.UUID]


class CountOut(BaseModel):
    count: int


class RateLimitCheck(_In):
    """Count one request of weight ``cost`` against every limit that applies (the user's, the channel's…)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f13", "channel": "discord"}]}
    )

    user_id: uuid.UUID | None = None
    channel: Name50 | None = None
    cost: Annotated[int, Field(ge=1, le=1_000_000)] = 1


class RateLimitDecisionOut(_Out):
    """``allowed`` false: ``scope`` names the limit used up, ``retry_after`` (seconds) when to try again."""

    allowed: bool
    scope: str | None
    limit: int | None
    window: float | None
    remaining: int | None
    retry_after: float
    degraded: bool


class FeatureFlagSet(_In):
    """A flag's value: on/off, a percentage of users, or A/B variants (see mnemostore.cache.flags)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"value": True},
                {"value": 25, "channel": "discord"},
                {"value": {"variants": {"control": 50, "treatment": 50}}},
            ]
        }
    )

    value: JsonValue = Field(description=FLAG_VALUE)
    channel: Name50 | None = Field(default=None, description="set it for one channel only")


class GlobalFeatureFlagSet(_In):
    """A global flag's value, for every tenant that does not set the flag itself."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"value": True}, {"value": 10}]})

    value: JsonValue = Field(description=FLAG_VALUE)


class FeatureFlagOut(BaseModel):
    """A flag as one user sees it: the channel's value wins over the tenant's, which wins over the global one."""

    flag: str
    enabled: bool
    variant: str | None = Field(description="the user's A/B variant (with user_id, on a variants flag)")


__all__ = [
    "ActiveUsersOut",
    "ChannelConfigOut",
    "ChannelConfigSet",
    "CountOut",
    "FeatureFlagOut",
    "FeatureFlagSet",
    "GlobalFeatureFlagSet",
    "RateLimitCheck",
    "RateLimitDecisionOut",
    "SessionOut",
    "SessionUpdate",
]
