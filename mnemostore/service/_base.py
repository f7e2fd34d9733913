"""Logic without I/O shared by both twins of the store: ids, cursors, row preparation, the export format."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from mnemostore.domain import (
    AgentMetric,
    ApiKey,
    Checkpoint,
    Conversation,
    ConversationStatus,
    InteractionEvent,
    Memory,
    Message,
    NewMessage,
    Page,
    Role,
    ToolExecution,
    new_id,
)
from mnemostore.errors import InvalidCursor, InvalidInput
from mnemostore.service import _validation as v
from mnemostore.store import decode_cursor, encode_cursor

__all__ = [
    "EXPORT_FORMAT",
    "UNSET",
    "Unset",
    "as_id",
    "conversation_cursor",
    "conversation_from_export",
    "decode_conversation_cursor",
    "decode_history_cursor",
    "decode_list_cursor",
    "history_cursor",
    "id_cursor",
    "knowledge_rows",
    "list_cursor",
    "message_rows",
    "page_after",
    "parse_api_key",
    "to_export",
    "utc_now",
]

ListItem = TypeVar("ListItem", ApiKey, Memory, ToolExecution, Checkpoint, InteractionEvent, AgentMetric)

EXPORT_FORMAT: Final = "mnemostore.conversation"
EXPORT_VERSION: Final = 1


class Unset:
    """Type of UNSET: marks an argument the caller did not pass, as opposed to passing None to clear a field."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()


def utc_now() -> datetime:
    """The time every write is stamped with (timezone-aware UTC)."""
    return datetime.now(UTC)


def as_id(value: uuid.UUID | str | None, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"{field} {value!r} is not a UUID: pass the id the store returned") from None


def id_cursor(cursor: str) -> uuid.UUID:
    """Listings ordered by id page with the last id seen as the cursor."""
    try:
        return uuid.UUID(cursor)
    except (ValueError, TypeError, AttributeError):
        raise InvalidCursor(f"cursor {cursor!r} is not one this store handed out: pass it back unchanged") from None


def history_cursor(seq: int) -> str:
    return encode_cursor("h", seq)


def decode_history_cursor(cursor: str) -> int:
    (seq,) = decode_cursor("h", cursor, 1)
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise InvalidCursor(f"cursor {cursor!r} is damaged: pass back the cursor the store returned")
    return seq


def conversation_cursor(conversation: Conversation) -> str:
    return encode_cursor("c", conversation.last_activity_at.isoformat(), str(conversation.id))


def decode_conversation_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    at, cid = decode_cursor("c", cursor, 2)
    try:
        return datetime.fromisoformat(at), uuid.UUID(cid)
    except (ValueError, TypeError):
        raise InvalidCursor(f"cursor {cursor!r} is damaged: pass back the cursor the store returned") from None


# Listings that return plain lists page by the sort key of the last item seen: (kind, type of the sort key).
_LIST_KEYS: Final[dict[type[Any], tuple[str, type[Any]]]] = {
    Memory: ("m", float),
    ToolExecution: ("t", datetime),
    Checkpoint: ("k", int),
    InteractionEvent: ("e", datetime),
    AgentMetric: ("a", datetime),
}


def list_cursor(item: ApiKey | Memory | ToolExecution | Checkpoint | InteractionEvent | AgentMetric) -> str:
    """The cursor that continues a listing after ``item`` (pass it as ``cursor=`` to the same listing).

    API keys page by id; the newest-first listings (tool executions, checkpoints, interaction events, metrics)
    and memories (most important first) page by their sort key and id, so an item deleted meanwhile does not
    end the listing early.
    """
    if isinstance(item, ApiKey):
        return str(item.id)
    kind, _ = _LIST_KEYS[type(item)]
    key: Any
    if isinstance(item, Memory):
        key = item.importance
    elif isinstance(item, Checkpoint):
        key = item.iteration
    elif isinstance(item, AgentMetric):
        key = item.recorded_at.isoformat()
    else:
        key = item.created_at.isoformat()
    return encode_cursor(kind, key, str(item.id))


def page_after(items: Sequence[ListItem], limit: int) -> Page[ListItem]:
    """A page from a listing fetched with ``limit + 1`` rows: the extra row only says that there is more."""
    shown = list(items[:limit])
    return Page(items=shown, next_cursor=list_cursor(shown[-1]) if len(items) > limit else None)


def decode_list_cursor(of: type[Any], cursor: str) -> tuple[Any, uuid.UUID]:
    """(sort key, id) from a ``list_cursor`` of an item of type ``of``; InvalidCursor when it is not one."""
    kind, key_type = _LIST_KEYS[of]
    key, item_id = decode_cursor(kind, cursor, 2)
    damaged = InvalidCursor(f"cursor {cursor!r} is damaged: pass back the cursor the store returned")
    try:
        parsed_id = uuid.UUID(item_id)
        if key_type is datetime:
            key = datetime.fromisoformat(key)
            if key.tzinfo is None:
                raise damaged
        elif key_type is float:
            if isinstance(key, bool) or not isinstance(key, int | float):
                raise damaged
            key = float(key)
        elif isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < 2**31:
            raise damaged
    except (ValueError, TypeError, AttributeError):
        raise damaged from None
    return key, parsed_id


def message_rows(
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    new_messages: Sequence[NewMessage | Mapping[str, Any]],
    *,
    max_content_bytes: int,
    max_metadata_bytes: int,
) -> list[dict[str, Any]]:
    """Validate messages to append and turn them into rows (without seq and created_at, set under the lock)."""
    rows = []
    for index, item in enumerate(new_messages):
        if isinstance(item, Mapping):
            try:
                item = NewMessage(**item)
            except TypeError as error:
                raise InvalidInput(f"message {index}: {error}") from None
        elif not isinstance(item, NewMessage):
            raise InvalidInput(f"message {index} must be a NewMessage or a mapping, got {type(item).__name__}")
        role = v.check_enum(Role, item.role)
        size = v.check_content(item.content, max_bytes=max_content_bytes)
        rows.append(
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "conversation_id": conversation_id,
                "role": role.value,
                "content": item.content,
                "model": v.check_name(item.model, "model", max_len=200),
                "prompt_tokens": v.check_tokens(item.prompt_tokens, "prompt_tokens"),
                "completion_tokens": v.check_tokens(item.completion_tokens, "completion_tokens"),
                "metadata": v.check_json(item.metadata, "metadata", max_bytes=max_metadata_bytes, allow_none=True),
                "idempotency_key": v.check_name(item.idempotency_key, "idempotency_key", max_len=200),
                "_bytes": size,
            }
        )
    return rows


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


def knowledge_rows(
    chunks: Iterable[Mapping[str, Any]], *, max_content_bytes: int, max_metadata_bytes: int
) -> list[dict[str, Any]]:
    """Validate chunks to upsert; a later duplicate of an external id in the same call wins."""
    by_id: dict[str, dict[str, Any]] = {}
    for index, chunk in enumerate(chunks):
        if not isinstance(chunk, Mapping):
            raise InvalidInput(f"chunk {index} must be a mapping with external_id and content")
        external_id = v.check_name(chunk.get("external_id"), f"chunks[{index}].external_id", max_len=500, required=True)
        content = chunk.get("content")
        size = v.check_content(content, field=f"chunks[{index}].content", max_bytes=max_content_bytes)  # type: ignore[arg-type]
        assert external_id is not None and isinstance(content, str)
        by_id[external_id] = {
            "external_id": external_id,
            "title": v.check_name(chunk.get("title"), f"chunks[{index}].title", max_len=1000),
            "content": content,
            "content_hash": hashlib.sha256(content.encode()).hexdigest(),
            "content_bytes": size,
            "metadata": v.check_json(
                chunk.get("metadata"), f"chunks[{index}].metadata", max_bytes=max_metadata_bytes, allow_none=True
            ),
        }
    return list(by_id.values())


def parse_api_key(token: str, prefix: str) -> tuple[uuid.UUID, str] | None:
    """Split ``<prefix>_<tenant hex>_<secret>`` into (tenant id, SHA-256 of the secret); None if malformed.

    The tenant id travels in the key so the lookup can run inside that tenant's scope (row-level security
    stays on); only the secret's hash is stored, and the lookup is by hash, so timing reveals nothing useful.
    """
    parts = token.split("_", 2) if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != prefix:
        return None
    try:
        tenant_id = uuid.UUID(hex=parts[1])
    except ValueError:
        return None
    return tenant_id, hashlib.sha256(parts[2].encode()).hexdigest()
