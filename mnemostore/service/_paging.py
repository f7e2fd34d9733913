"""Cursors of every listing, and pages built from a ``limit + 1`` fetch (pure: both twins use it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

from mnemostore.config import MAX_INTEGER
from mnemostore.domain import (
    AgentMetric,
    ApiKey,
    Checkpoint,
    Conversation,
    InteractionEvent,
    MemoryRecord,
    Page,
    ToolExecution,
)
from mnemostore.errors import InvalidCursor
from mnemostore.store import decode_cursor, encode_cursor

__all__ = [
    "conversation_cursor",
    "decode_conversation_cursor",
    "decode_history_cursor",
    "decode_list_cursor",
    "history_cursor",
    "id_cursor",
    "list_cursor",
    "page_after",
]

ListItem = TypeVar("ListItem", ApiKey, MemoryRecord, ToolExecution, Checkpoint, InteractionEvent, AgentMetric)


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
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_INTEGER:
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


_LIST_KEYS: Final[dict[type[Any], tuple[str, type[Any]]]] = {
    MemoryRecord: ("m", float),
    ToolExecution: ("t", datetime),
    Checkpoint: ("k", int),
    InteractionEvent: ("e", datetime),
    AgentMetric: ("a", datetime),
}


def list_cursor(item: ApiKey | MemoryRecord | ToolExecution | Checkpoint | InteractionEvent | AgentMetric) -> str:
    """The cursor that continues a listing after ``item`` (pass it as ``cursor=`` to the same listing).

    API keys page by id; the newest-first listings (tool executions, checkpoints, interaction events, metrics)
    and memories (most important first) page by their sort key and id, so an item deleted meanwhile does not
    end the listing early.
    """
    if isinstance(item, ApiKey):
        return str(item.id)
    kind, _ = _LIST_KEYS[type(item)]
    key: Any
    if isinstance(item, MemoryRecord):
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
            if isinstance(key, bool) or not isinstance(key, int | float) or not -MAX_INTEGER <= key <= MAX_INTEGER:
                raise damaged
            key = float(key)
        elif isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < 2**31:
            raise damaged
    except (ValueError, TypeError, AttributeError):
        raise damaged from None
    return key, parsed_id
