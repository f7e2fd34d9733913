"""Input checks shared by both twins of the store, so a bad value is refused before anything is written.

NUL bytes: PostgreSQL cannot store U+0000 in text or jsonb, and SQLite would keep it, so the two backends would
disagree. We refuse it on both with InvalidText rather than strip it silently, because nothing may be lost
without the caller knowing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from mnemostore.domain import ConversationStatus, MemoryKind, MemoryTier, Quotas, Role
from mnemostore.errors import ContentTooLarge, InvalidInput, InvalidMetadata, InvalidText

__all__ = [
    "check_content",
    "check_enum",
    "check_json",
    "check_json_value",
    "check_limit",
    "check_name",
    "check_number",
    "check_quotas",
    "check_text",
    "check_time",
    "check_tokens",
]


def check_text(value: str, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidText(f"{field} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidText(f"{field} contains a NUL byte (\\x00), which the store refuses: remove or escape it")
    return value


def check_content(value: str, *, field: str = "content", max_bytes: int) -> int:
    """Validate message or chunk text; return its size in UTF-8 bytes."""
    check_text(value, field)
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidText(f"{field} is not valid Unicode (lone surrogate at {exc.start}): fix the encoding") from exc
    if size > max_bytes:
        raise ContentTooLarge(
            f"{field} is {size} bytes, over the {max_bytes}-byte maximum: split it, or raise "
            "MNEMOSTORE_MAX_CONTENT_BYTES"
        )
    return size


def check_name(value: str | None, field: str, *, max_len: int, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidInput(f"{field} is required")
        return None
    check_text(value, field)
    if required and not value.strip():
        raise InvalidInput(f"{field} must not be empty")
    if len(value) > max_len:
        raise InvalidInput(f"{field} is {len(value)} characters, over the {max_len}-character maximum")
    return value


def _walk(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidMetadata(f"{path} contains a NUL byte (\\x00), which the store refuses: remove it")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadata(f"{path} has a non-string key {key!r}: JSON object keys are strings")
            _walk(key, f"{path} key")
            _walk(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidMetadata(f"{path} is {value}, which JSON cannot hold: use null or a string")
    elif value is not None and not isinstance(value, bool | int | float):
        raise InvalidMetadata(f"{path} holds a {type(value).__name__}, which is not JSON: convert it first")


def check_json(value: Any, field: str, *, max_bytes: int, allow_none: bool = False) -> dict[str, Any]:
    """Validate a JSON object (metadata, config, state) and return it as a plain dict."""
    if value is None:
        if allow_none:
            return {}
        raise InvalidMetadata(f"{field} must be a JSON object, got null")
    if not isinstance(value, Mapping):
        raise InvalidMetadata(f"{field} must be a JSON object (a dict), got {type(value).__name__}")
    _walk(value, field)
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > max_bytes:
        raise InvalidMetadata(f"{field} is {size} bytes as JSON, over the {max_bytes}-byte maximum")
    return dict(value)


def check_json_value(value: Any, field: str) -> Any:
    """Validate any JSON value (a tool result may be a list or a string)."""
    _walk(value, field)
    return value


E = TypeVar("E", Role, ConversationStatus, MemoryTier, MemoryKind)

_ENUMS: dict[type[Any], str] = {
    Role: "role",
    ConversationStatus: "status",
    MemoryTier: "tier",
    MemoryKind: "kind",
}


def check_enum(kind: type[E], value: Any) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidInput(f"{_ENUMS[kind]} {value!r} is not one of: {allowed}") from None


def check_tokens(value: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 2**31 - 1:
        raise InvalidInput(f"{field} must be a non-negative integer below 2**31, got {value!r}")
    return value


def check_limit(limit: int, *, maximum: int = 1000) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be an integer from 1 to {maximum}, got {limit!r}")
    return limit


def check_number(value: Any, field: str) -> float:
    """A finite int or float (not a bool): NaN and infinities are stored differently by each backend."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a finite number, got {value!r}")
    return float(value)


def check_time(value: Any, field: str) -> datetime | None:
    """None or a timezone-aware datetime (a naive one would be read differently by each server)."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInput(f"{field} must be a timezone-aware datetime (e.g. datetime.now(UTC)), got {value!r}")
    return value


def check_quotas(quotas: Quotas) -> Quotas:
    for name in ("max_users", "max_messages", "max_storage_bytes"):
        value = getattr(quotas, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise InvalidInput(f"quota {name} must be None (unlimited) or a non-negative integer, got {value!r}")
    return quotas
