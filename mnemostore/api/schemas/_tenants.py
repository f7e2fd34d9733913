"""Bodies of tenants, their usage and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mnemostore.api.schemas._common import (
    MAX_INT64,
    JsonObject,
    Required50,
    Required200,
    _In,
    _Out,
)
from mnemostore.domain import TenantStatus


class QuotasIn(_In):
    max_users: Annotated[int, Field(ge=0, le=MAX_INT64)] | None = None
    max_messages: Annotated[int, Field(ge=0, le=MAX_INT64)] | None = None
    max_storage_bytes: Annotated[int, Field(ge=0, le=MAX_INT64)] | None = None
    allowed_models: Annotated[list[Required200], Field(max_length=1000)] | None = Field(
        None, description="models conversations and messages may name (null: any model)"
    )


class QuotasOut(_Out):
    max_users: int | None
    max_messages: int | None
    max_storage_bytes: int | None
    allowed_models: list[str] | None = None


class TenantCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "acme", "plan": "pro", "quotas": {"max_users": 1000}, "config": {"tz": "UTC"}}]
        }
    )

    name: Required200
    plan: Required50 = "free"
    config: JsonObject | None = None
    quotas: QuotasIn | None = None


class TenantUpdate(_In):
    """Fields not sent stay as they are; ``config`` is replaced whole."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"plan": "enterprise", "quotas": {"max_users": 5000}}]})

    config: JsonObject | None = None
    plan: Required50 | None = None
    quotas: QuotasIn | None = None
    status: TenantStatus | None = None


class TenantOut(_Out):
    id: uuid.UUID
    name: str
    plan: str
    status: TenantStatus
    quotas: QuotasOut
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class UsageOut(_Out):
    tenant_id: uuid.UUID
    users: int
    conversations: int
    messages: int
    tokens: int
    storage_bytes: int


class ApiKeyCreate(_In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "ci-bot", "read_only": True}]})

    name: Required200
    read_only: bool = False


class ApiKeyOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str = Field(description="the first characters of the secret, to recognise the key")
    read_only: bool
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(BaseModel):
    """The new key and its secret, which is shown only in this answer (the store keeps its SHA-256)."""

    key: ApiKeyOut
    secret: str = Field(description="send it as `Authorization: Bearer <secret>`")
