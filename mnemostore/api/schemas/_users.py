"""Bodies of users and their identities."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict

from mnemostore.api.schemas._common import (
    JsonObject,
    Name200,
    Name320,
    Required50,
    Required200,
    _In,
    _Out,
)


class UserCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"display_name": "Ada", "email": "ada@example.com", "external_id": "crm-7"}]}
    )

    display_name: Name200 | None = None
    email: Name320 | None = None
    external_id: Name200 | None = None
    preferred_model: Name200 | None = None
    preferences: JsonObject | None = None
    metadata: JsonObject | None = None


class UserResolve(_In):
    """The user behind a channel identity, created on first sight (safe under concurrency)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"channel": "discord", "channel_user_id": "81234", "username": "ada"}]}
    )

    channel: Required50
    channel_user_id: Required200
    username: Name200 | None = None
    display_name: Name200 | None = None
    email: Name320 | None = None
    preferred_model: Name200 | None = None
    preferences: JsonObject | None = None
    metadata: JsonObject | None = None


class UserUpdate(_In):
    """Only the fields sent change; send null to clear a field."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"preferred_model": "gpt-4o", "external_id": None}]})

    display_name: Name200 | None = None
    email: Name320 | None = None
    external_id: Name200 | None = None
    preferred_model: Name200 | None = None
    preferences: JsonObject | None = None
    metadata: JsonObject | None = None


class UserOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    display_name: str | None
    email: str | None
    external_id: str | None
    preferred_model: str | None
    preferences: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class IdentityCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"channel": "telegram", "channel_user_id": "5550001", "username": "ada"}]}
    )

    channel: Required50
    channel_user_id: Required200
    username: Name200 | None = None


class IdentityOut(_Out):
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    channel: str
    channel_user_id: str
    username: str | None
    created_at: datetime
