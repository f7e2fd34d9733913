"""The conversation export format (``export_conversation`` / ``import_conversation``), both ways."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from mnemostore.domain import (
    Conversation,
    ConversationStatus,
    Message,
    NewMessage,
    new_id,
)
from mnemostore.errors import InvalidInput
from mnemostore.service import _validation as v
from mnemostore.service._inputs import as_id, message_rows

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "conversation_from_export", "to_export"]

EXPORT_FORMAT: Final = "mnemostore.conversation"


EXPORT_VERSION: Final = 1


_CONVERSATION_FIELDS = ("title", "status", "channel", "model_override", "metadata")


_MESSAGE_FIELDS = ("seq", "role", "content", "model", "prompt_tokens", "completion_tokens", "metadata")


def to_export(conversation: Conversation, messages: Sequence[Message]) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "conversation": {
            "id": str(conversation.id),
            "user_id": str(conversation.user_id),
            **{f: getattr(conversation, f) for f in _CONVERSATION_FIELDS},
            "started_at": conversation.started_at.isoformat(),
            "last_activity_at": conversation.last_activity_at.isoformat(),
        },
        "messages": [
            {
                "id": str(m.id),
                **{f: getattr(m, f) for f in _MESSAGE_FIELDS},
                "created_at": m.created_at.isoformat(),
                "idempotency_key": m.idempotency_key,
            }
            for m in messages
        ],
    }


def _time(value: Any, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} {value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{field} {value!r} has no time zone: exports carry UTC offsets")
    return parsed


def conversation_from_export(
    data: Mapping[str, Any], *, max_content_bytes: int, max_metadata_bytes: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate an export and return (conversation values, message rows) ready to insert."""
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        raise InvalidInput(f"not a conversation export: expected a JSON object with format {EXPORT_FORMAT!r}")
    if data.get("version") != EXPORT_VERSION:
        raise InvalidInput(
            f"export version {data.get('version')!r} is not supported (this store reads {EXPORT_VERSION})"
        )
    conv = data.get("conversation")
    items = data.get("messages")
    if not isinstance(conv, Mapping) or not isinstance(items, list):
        raise InvalidInput("export lacks its 'conversation' object or 'messages' list")
    try:
        seqs = [int(item["seq"]) for item in items]
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("every exported message needs an integer 'seq'") from None
    if len(set(seqs)) != len(seqs) or any(s < 1 for s in seqs):
        raise InvalidInput("exported messages have duplicate or non-positive sequence numbers")
    rows: list[dict[str, Any]] = []
    size = tokens = 0
    for index, item in enumerate(items):
        prepared = message_rows(
            uuid.UUID(int=0),
            uuid.UUID(int=0),
            [
                NewMessage(
                    role=item.get("role", ""),
                    content=item.get("content"),
                    model=item.get("model"),
                    prompt_tokens=item.get("prompt_tokens", 0),
                    completion_tokens=item.get("completion_tokens", 0),
                    metadata=item.get("metadata") or {},
                    idempotency_key=item.get("idempotency_key"),
                )
            ],
            max_content_bytes=max_content_bytes,
            max_metadata_bytes=max_metadata_bytes,
        )[0]
        size += prepared.pop("_bytes")
        for extra in ("_said_at", "_vector", "_vector_model"):  # the export's own created_at follows
            del prepared[extra]
        tokens += prepared["prompt_tokens"] + prepared["completion_tokens"]
        prepared["id"] = as_id(item.get("id") or new_id(), f"messages[{index}].id")
        prepared["seq"] = seqs[index]
        prepared["created_at"] = _time(item.get("created_at"), f"messages[{index}].created_at")
        rows.append(prepared)
    conversation = {
        "id": as_id(conv.get("id") or new_id(), "conversation.id"),
        "user_id": as_id(conv.get("user_id"), "conversation.user_id"),
        "title": v.check_name(conv.get("title"), "title", max_len=500),
        "status": v.check_enum(ConversationStatus, conv.get("status", "active")).value,
        "channel": v.check_name(conv.get("channel"), "channel", max_len=50),
        "model_override": v.check_name(conv.get("model_override"), "model_override", max_len=200),
        "metadata": v.check_json(conv.get("metadata"), "metadata", max_bytes=max_metadata_bytes, allow_none=True),
        "started_at": _time(conv.get("started_at"), "conversation.started_at"),
        "last_activity_at": _time(conv.get("last_activity_at"), "conversation.last_activity_at"),
        "message_count": len(rows),
        "total_tokens": tokens,
        "content_bytes": size,
        "last_seq": max(seqs, default=0),
    }
    return conversation, rows
