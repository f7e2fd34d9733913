"""Input checks shared by both twins of the store, so a bad value is refused before anything is written.

NUL bytes: PostgreSQL cannot store U+0000 in text or jsonb, and SQLite would keep it, so the two backends would
disagree. We refuse it on both with InvalidText rather than strip it silently, because nothing may be lost
without the caller knowing.

Numbers: every integer the store takes, as an argument or inside JSON, lies in ``-MAX_INTEGER .. MAX_INTEGER``
(``mnemostore.config``, 2**63 - 1), checked here by ``check_int``, ``check_number`` and ``check_json``. Inside
JSON we refuse a larger integer when it is written, not only when a filter holds it: SQLite's JSON functions read
it back as an inexact REAL while PostgreSQL's jsonb keeps it exact, so a stored one would match a filter on one
backend and not on the other; refused at the door, it is never stored, and both backends compare the same values.
JSON nesting stops at ``MAX_JSON_DEPTH`` (100) levels, for the same reason of agreement (SQLite refuses 1,000).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from mnemostore.config import MAX_INTEGER, MAX_JSON_DEPTH
from mnemostore.domain import ConversationStatus, MemoryKind, MemoryTier, Quotas, Role
from mnemostore.errors import ContentTooLarge, InvalidInput, InvalidMetadata, InvalidText, InvalidVector

__all__ = [
    "check_content",
    "check_email",
    "check_enum",
    "check_int",
    "check_json",
    "check_json_value",
    "check_limit",
    "check_name",
    "check_number",
    "check_quotas",
    "check_text",
    "check_time",
    "check_tokens",
    "check_vector",
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


def show(value: Any) -> str:
    """``repr(value)``, short for an integer too long to print (Python refuses to print 4,300 digits or more)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value)


def _out_of_range(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and not -MAX_INTEGER <= value <= MAX_INTEGER


def json_depth(value: Any) -> int:
    """How deep ``value`` nests (a scalar: 0, ``{"a": [1]}``: 2), counted without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            items: Any = item.values()
        elif isinstance(item, list | tuple):
            items = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in items)
    return deepest


def _walk(value: Any, path: str, depth: int = 0, root: str = "") -> None:
    root = root or path
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_JSON_DEPTH:
        raise InvalidMetadata(
            f"{root} is nested {depth + json_depth(value)} levels deep, over the limit of {MAX_JSON_DEPTH} "
            "(mnemostore.config.MAX_JSON_DEPTH): flatten it, or store the deep part as a JSON string"
        )
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidMetadata(f"{path} contains a NUL byte (\\x00), which the store refuses: remove it")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadata(f"{path} has a non-string key {key!r}: JSON object keys are strings")
            _walk(key, f"{path} key")
            _walk(item, f"{path}.{key}", depth + 1, root)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", depth + 1, root)
    elif _out_of_range(value):
        raise InvalidMetadata(
            f"{path} is {show(value)}, outside the integers the store keeps (-{MAX_INTEGER} to {MAX_INTEGER}, "
            "signed 64-bit): pass it as a string"
        )
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


# A pragmatic address check (the ``email-validator`` package is not a dependency): a dot-atom local part, a
# domain of at least two labels. Letters beyond ASCII are allowed in both (internationalised addresses); quoted
# local parts and IP-literal domains, which no user signs up with, are not.
_LOCAL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+)*"
)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9\u0080-\U0010ffff-]{1,63}(?<!-)")


def check_email(value: str | None, field: str = "email") -> str | None:
    """None, or an email address with its domain in lower case (``Ada@Example.COM`` -> ``Ada@example.com``: the
    domain is case-insensitive, the local part may not be, so only the domain is folded)."""
    if value is None:
        return None
    check_name(value, field, max_len=254, required=True)
    if value != value.strip() or any(char.isspace() for char in value):
        raise InvalidInput(f"{field} {value!r} contains white space: pass the bare address, like ada@example.com")
    local, at, domain = value.rpartition("@")
    if not at or not local:
        raise InvalidInput(f"{field} {value!r} is not an address: expected local-part@domain, like ada@example.com")
    if len(local) > 64:
        raise InvalidInput(f"{field} {value!r} has a local part of {len(local)} characters, over the 64 allowed")
    if not _LOCAL.fullmatch(local):
        raise InvalidInput(
            f"{field} {value!r} has an invalid local part {local!r}: letters, digits and !#$%&'*+/=?^_`{{|}}~- "
            "in dot-separated words (no quotes, no leading, trailing or double dot, a single @)"
        )
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise InvalidInput(
            f"{field} {value!r} has an invalid domain {domain!r}: expected a name like example.com (dot-separated "
            "labels of letters, digits and inner hyphens, at least two; no IP address)"
        )
    return f"{local}@{domain.lower()}"


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


def check_int(value: Any, field: str, *, minimum: int = 0, maximum: int = MAX_INTEGER) -> int:
    """An int (not a bool) from ``minimum`` to ``maximum``: the one check of every integer argument that reaches
    SQL (limits, offsets, counts, quotas), so that none is out of what both backends bind as a signed 64-bit
    integer (SQLite's driver raises OverflowError beyond it, PostgreSQL "bigint out of range")."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(f"{field} must be an integer from {minimum} to {maximum}, got {show(value)}")
    return value


def check_tokens(value: int, field: str) -> int:
    """A count kept in a 32-bit column (tokens, iterations, compression levels)."""
    return check_int(value, field, maximum=2**31 - 1)


def check_limit(limit: int, *, maximum: int = 1000) -> int:
    return check_int(limit, "limit", minimum=1, maximum=maximum)


def check_number(value: Any, field: str) -> float:
    """A finite int or float (not a bool): NaN and infinities are stored differently by each backend, and an
    integer beyond ``MAX_INTEGER`` is refused as everywhere else (one past 10**308 is not even a float)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or _out_of_range(value)
        or not math.isfinite(value)
    ):
        raise InvalidInput(f"{field} must be a finite number (an integer within ±{MAX_INTEGER}), got {show(value)}")
    return float(value)


def check_time(value: Any, field: str) -> datetime | None:
    """None or a timezone-aware datetime (a naive one would be read differently by each server)."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInput(f"{field} must be a timezone-aware datetime (e.g. datetime.now(UTC)), got {value!r}")
    return value


def check_quotas(quotas: Quotas) -> Quotas:
    """``quotas`` checked, with ``allowed_models`` as a tuple of distinct names (in the order given)."""
    for name in ("max_users", "max_messages", "max_storage_bytes"):
        value = getattr(quotas, name)
        if value is not None:
            check_int(value, f"quota {name} (None: unlimited)")
    models = quotas.allowed_models
    if models is None:
        return quotas
    if isinstance(models, str) or not isinstance(models, list | tuple):
        raise InvalidInput(f"allowed_models must be a list of model names (None: any model), got {models!r}")
    if len(models) > 1000:
        raise InvalidInput(f"allowed_models lists {len(models)} models, over the maximum of 1000")
    for model in models:
        check_name(model, "a model of allowed_models", max_len=200, required=True)
    return dataclasses.replace(quotas, allowed_models=tuple(dict.fromkeys(models)))


# pgvector stores up to 16,000 dimensions; its HNSW index takes up to 2,000.
MAX_VECTOR_DIMENSION = 16_000


def check_vector(value: Any, field: str = "vector") -> list[float]:
    """A caller's vector as unit-length floats: a non-empty list of finite numbers, not all zero (cosine needs a
    length)."""
    if isinstance(value, str | bytes) or not hasattr(value, "__len__") or not hasattr(value, "__iter__"):
        raise InvalidVector(f"{field} must be a list of numbers (the embedding), got {type(value).__name__}")
    if not 0 < len(value) <= MAX_VECTOR_DIMENSION:
        raise InvalidVector(f"{field} must have 1 to {MAX_VECTOR_DIMENSION} numbers, got {len(value)}")
    out: list[float] = []
    for index, number in enumerate(value):
        if isinstance(number, bool | str | bytes) or not hasattr(number, "__float__"):
            raise InvalidVector(f"{field}[{index}] must be a number, got {show(number)}")
        as_float = float(number)
        if not math.isfinite(as_float) or abs(as_float) > 3.4e38:
            raise InvalidVector(f"{field}[{index}] must be a finite float32 number, got {show(number)}")
        out.append(as_float)
    length = math.sqrt(math.fsum(x * x for x in out))
    if length == 0.0:
        raise InvalidVector(f"{field} is all zeros: a zero vector has no direction to compare by cosine")
    # Unit length, like the embedders' own vectors: the embedded index ranks by inner product, which is then the
    # cosine similarity that pgvector computes.
    return [x / length for x in out]
