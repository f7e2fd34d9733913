"""Row → domain object mapping, written once for both twins of the repositories."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from mnemostore.domain import (
    AgentMetric,
    ApiKey,
    ChannelConfig,
    Checkpoint,
    Conversation,
    ConversationStatus,
    InteractionEvent,
    KnowledgeChunk,
    MemoryKind,
    MemoryRecord,
    MemoryTier,
    Message,
    Quotas,
    Role,
    Tenant,
    TenantStatus,
    TenantUsage,
    ToolExecution,
    User,
    UserIdentity,
)

__all__ = [
    "json_value",
    "messages_from_columns",
    "to_agent_metric",
    "to_api_key",
    "to_channel_config",
    "to_checkpoint",
    "to_conversation",
    "to_interaction_event",
    "to_knowledge_chunk",
    "to_memory",
    "to_message",
    "to_tenant",
    "to_tenant_usage",
    "to_tool_execution",
    "to_user",
    "to_user_identity",
    "utc_or_none",
]

Row = Any  # sqlalchemy.Row; attribute access by column name


def to_tenant(row: Row) -> Tenant:
    return Tenant(
        id=row.id,
        name=row.name,
        plan=row.plan,
        status=TenantStatus(row.status),
        quotas=Quotas(
            max_users=row.max_users,
            max_messages=row.max_messages,
            max_storage_bytes=row.max_storage_bytes,
            allowed_models=None if row.allowed_models is None else tuple(row.allowed_models),
        ),
        config=row.config,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_tenant_usage(row: Row) -> TenantUsage:
    return TenantUsage(
        tenant_id=row.tenant_id,
        users=row.users,
        conversations=row.conversations,
        messages=row.messages,
        tokens=row.tokens,
        storage_bytes=row.storage_bytes,
    )


def to_api_key(row: Row) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        prefix=row.prefix,
        read_only=row.read_only,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def to_user(row: Row) -> User:
    return User(
        id=row.id,
        tenant_id=row.tenant_id,
        display_name=row.display_name,
        email=row.email,
        external_id=row.external_id,
        preferred_model=row.preferred_model,
        preferences=row.preferences,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_user_identity(row: Row) -> UserIdentity:
    return UserIdentity(
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        channel=row.channel,
        channel_user_id=row.channel_user_id,
        username=row.username,
        created_at=row.created_at,
    )


def to_channel_config(row: Row) -> ChannelConfig:
    return ChannelConfig(
        tenant_id=row.tenant_id,
        channel=row.channel,
        default_model=row.default_model,
        settings=row.settings,
        rate_limits=row.rate_limits,
        updated_at=row.updated_at,
    )


def to_conversation(row: Row) -> Conversation:
    return Conversation(
        id=row.id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        title=row.title,
        status=ConversationStatus(row.status),
        channel=row.channel,
        model_override=row.model_override,
        metadata=row.metadata,
        started_at=row.started_at,
        last_activity_at=row.last_activity_at,
        message_count=row.message_count,
        total_tokens=row.total_tokens,
        content_bytes=row.content_bytes,
        last_seq=row.last_seq,
        external_id=row.external_id,
    )


_ROLES = {role.value: role for role in Role}


def to_message(row: Row | Mapping[str, Any]) -> Message:
    """A message from a ``messages`` row: a result row, or a mapping of its columns (e.g. the values an append
    just inserted; other keys are ignored). The one row -> ``Message`` mapping; ``message_from_columns`` is its
    positional form for the history hot path."""
    r = SimpleNamespace(**row) if isinstance(row, Mapping) else row
    return Message(
        id=r.id,
        tenant_id=r.tenant_id,
        conversation_id=r.conversation_id,
        seq=r.seq,
        role=Role(r.role),
        content=r.content,
        model=r.model,
        prompt_tokens=r.prompt_tokens,
        completion_tokens=r.completion_tokens,
        metadata=r.metadata,
        created_at=r.created_at,
        idempotency_key=r.idempotency_key,
    )


_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def json_value(text: str) -> Any:
    """A JSON column's text as Python, for the history hot paths (once per message of every page): an empty
    object (most metadata) without parsing, any other through the C scanner without ``json.loads``' layers (4x
    faster on small objects); text it does not take whole goes to ``json.loads``, which says what is wrong."""
    if text == "{}":
        return {}
    try:
        value, end = _SCAN_JSON(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def messages_from_columns(
    tenant_id: Any,
    conversation_id: Any,
    rows: Sequence[Sequence[Any]],
    open_metadata: Callable[[Any, Any], Any],
    first: int = 0,
) -> list[Message]:
    """Messages from rows holding ``_statements.HISTORY_COLUMNS`` from column ``first`` on (the history hot
    paths), their metadata opened by ``open_metadata(tenant_id, metadata)`` and their times in UTC. Built in one
    comprehension: it runs for every message of every page read from the database."""
    i = first
    return [
        Message(
            id=row[i],
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            seq=row[i + 1],
            role=_ROLES[row[i + 2]],
            content=row[i + 3],
            model=row[i + 4],
            prompt_tokens=row[i + 5],
            completion_tokens=row[i + 6],
            metadata=open_metadata(tenant_id, row[i + 7]),
            created_at=row[i + 8] if row[i + 8].tzinfo is UTC else row[i + 8].astimezone(UTC),
            idempotency_key=row[i + 9],
        )
        for row in rows
    ]


def to_memory(row: Row) -> MemoryRecord:
    return MemoryRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        agent_id=row.agent_id,
        content=row.content,
        kind=MemoryKind(row.kind),
        tier=MemoryTier(row.tier),
        importance=row.importance,
        source_message_ids=list(row.source_message_ids),
        compression_level=row.compression_level,
        expires_at=row.expires_at,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
        recall_count=row.recall_count,
        last_recalled_at=row.last_recalled_at,
        conversation_id=row.conversation_id,
    )


def to_knowledge_chunk(row: Row) -> KnowledgeChunk:
    return KnowledgeChunk(
        id=row.id,
        tenant_id=row.tenant_id,
        source=row.source,
        external_id=row.external_id,
        title=row.title,
        content=row.content,
        content_hash=row.content_hash,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_tool_execution(row: Row) -> ToolExecution:
    return ToolExecution(
        id=row.id,
        tenant_id=row.tenant_id,
        conversation_id=row.conversation_id,
        tool=row.tool,
        action=row.action,
        parameters=row.parameters,
        result=row.result,
        success=row.success,
        error=row.error,
        duration_ms=row.duration_ms,
        created_at=row.created_at,
    )


def to_checkpoint(row: Row) -> Checkpoint:
    return Checkpoint(
        id=row.id,
        tenant_id=row.tenant_id,
        conversation_id=row.conversation_id,
        iteration=row.iteration,
        name=row.name,
        state=row.state,
        context_summary=row.context_summary,
        parent_id=row.parent_id,
        created_at=row.created_at,
    )


def to_interaction_event(row: Row) -> InteractionEvent:
    return InteractionEvent(
        id=row.id,
        tenant_id=row.tenant_id,
        conversation_id=row.conversation_id,
        checkpoint_id=row.checkpoint_id,
        event_type=row.event_type,
        data=row.data,
        goal_modified=row.goal_modified,
        created_at=row.created_at,
    )


def to_agent_metric(row: Row) -> AgentMetric:
    return AgentMetric(
        id=row.id,
        tenant_id=row.tenant_id,
        conversation_id=row.conversation_id,
        metric_type=row.metric_type,
        value=row.value,
        labels=row.labels,
        recorded_at=row.recorded_at,
    )


def utc_or_none(value: datetime | str | None) -> datetime | None:
    """Aggregates (min, max) bypass the column type on SQLite and come back as text; normalise them."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
