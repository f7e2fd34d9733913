"""What callers pass in, checked and shaped for the repositories: ids, the "not passed" sentinel, the
write time, messages and knowledge chunks to insert, API key tokens (pure: both twins use it)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from mnemostore.domain import (
    Message,
    NewMessage,
    Role,
    new_id,
)
from mnemostore.errors import InvalidInput
from mnemostore.service import _validation as v

__all__ = [
    "UNSET",
    "Unset",
    "as_id",
    "knowledge_rows",
    "message_differences",
    "message_rows",
    "parse_api_key",
    "utc_now",
]


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


def tenant_ref(value: uuid.UUID | str) -> uuid.UUID | str:
    """A tenant given by id (a UUID or its text) or by name: the UUID, or the name to look up."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"tenant {value!r} is neither a tenant id nor a tenant name")
    try:
        return uuid.UUID(value)
    except ValueError:
        return value


@dataclass(slots=True)
class Supplied:
    """What the caller gave beyond the messages themselves: when each was said, and its vector with its model."""

    said_at: dict[uuid.UUID, datetime] = field(default_factory=dict)
    vectors: dict[uuid.UUID, tuple[list[float], str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.said_at or self.vectors)


def message_rows(
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    new_messages: Sequence[NewMessage | Mapping[str, Any]],
    *,
    max_content_bytes: int,
    max_metadata_bytes: int,
) -> list[dict[str, Any]]:
    """Validate messages to append and turn them into rows (without seq and created_at, set under the lock; a time
    the caller gave waits in ``_said_at``)."""
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
                "_said_at": _in_utc(v.check_time(item.created_at, "created_at")),
                "_vector": item.vector,
                "_vector_model": item.vector_model,
            }
        )
    return rows


def _in_utc(moment: datetime | None) -> datetime | None:
    """A caller's time as the database gives it back (UTC), so that the message returned now and the one read
    later are the same value in the same form."""
    return None if moment is None else moment.astimezone(UTC)


def message_differences(row: Mapping[str, Any], stored: Message, *, said_at: datetime | None = None) -> list[str]:
    """The fields in which a message to append (a row of ``message_rows``, and the time the caller gave) differs
    from a stored one: empty when it is the same message, sent again. Metadata is compared as JSON (``(1, 2)`` and
    ``[1, 2]`` are one value); the time only when the caller gave one."""
    sent: dict[str, Any] = {
        "role": row["role"],
        "content": row["content"],
        "model": row["model"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "metadata": json.loads(json.dumps(row["metadata"] or {})),
    }
    if said_at is not None:
        sent["created_at"] = said_at
    kept: dict[str, Any] = {
        "role": stored.role.value,
        "content": stored.content,
        "model": stored.model,
        "prompt_tokens": stored.prompt_tokens,
        "completion_tokens": stored.completion_tokens,
        "metadata": stored.metadata or {},
    }
    if "created_at" in sent:
        kept["created_at"] = stored.created_at
    return [name for name, value in sent.items() if kept[name] != value]


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
