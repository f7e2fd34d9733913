"""Opaque paging cursors.

A cursor is the key of the row a page ended on, packed so callers treat it as a token and the store may change
what it holds without breaking anyone. Decoding failures become InvalidCursor, never a server error.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from mnemostore.errors import InvalidCursor

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(kind: str, *values: Any) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, arity: int) -> list[Any]:
    """Return the values packed in ``cursor``, checking it was made for this kind of listing."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor(f"cursor {cursor!r} is not one this store handed out: pass it back unchanged") from exc
    if not isinstance(data, list) or len(data) != arity + 1 or data[0] != kind:
        raise InvalidCursor(f"cursor {cursor!r} belongs to another listing: use the cursor from this one")
    return data[1:]
