"""JSON of the service <-> mnemostore's own classes: the client returns what the library returns.

Answers become the domain dataclasses (``User``, ``Message``, ``Page``…) and search results
(``SearchResults`` of ``SearchHit``), field by field from the dataclass's type hints; fields the service adds later
are ignored, so an older client keeps working against a newer server. Requests are made JSON-ready (ids, times,
enums, ``NewMessage``) and leave out what the caller did not pass (``UNSET``).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

from mnemostore.domain import Page
from mnemostore.errors import MnemostoreError
from mnemostore.search import SearchHit, SearchMode, SearchResults

__all__ = ["UNSET", "Unset", "decode", "decode_list", "decode_page", "decode_results", "jsonable", "present"]

T = TypeVar("T")


class Unset:
    """The type of ``UNSET``: "not passed", where None is a value (``update_user(user_id, email=None)`` clears)."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()


def present(**values: Any) -> dict[str, Any]:
    """The values passed, without the ``UNSET`` ones, made JSON-ready."""
    return {name: jsonable(value) for name, value in values.items() if not isinstance(value, Unset)}


def jsonable(value: Any) -> Any:
    """``value`` as JSON can carry it: ids and times as text, enums as their values, dataclasses as objects."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(jsonable(key)): jsonable(item) for key, item in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [jsonable(item) for item in value]
    return value  # left to the JSON encoder, which names what it cannot send


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def decode(cls: type[T], data: Any) -> T:
    """One object of the service's answer as ``cls`` (a dataclass of ``mnemostore.domain`` or ``search``)."""
    if not isinstance(data, Mapping):
        raise _unexpected(cls, data)
    hints = _hints(cls)
    values = {f.name: _convert(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}  # type: ignore[arg-type]
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise _unexpected(cls, data) from error


def decode_list(cls: type[T], data: Any, key: str = "items") -> list[T]:
    """The ``items`` (or ``key``) of an answer, each as ``cls``."""
    items = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise _unexpected(cls, data)
    return [decode(cls, item) for item in items]


def decode_page(cls: type[T], data: Any) -> Page[T]:
    """A listing's page: its items as ``cls`` and its ``next_cursor``."""
    cursor = data.get("next_cursor") if isinstance(data, Mapping) else None
    return Page(items=decode_list(cls, data), next_cursor=cursor if isinstance(cursor, str) else None)


def decode_results(data: Any) -> SearchResults:
    """A search's answer: the hits, best first, with the mode and retrievers that ran."""
    hits = decode_list(SearchHit, data)
    return SearchResults(
        hits, mode=SearchMode(data["mode"]), retrievers=data.get("retrievers", ()), pending=data.get("pending", 0)
    )


def _convert(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return [_convert(item, v) for v in value]
    if origin is tuple and typing.get_args(annotation)[1:] == (Ellipsis,):
        return tuple(_convert(typing.get_args(annotation)[0], v) for v in value)
    if origin is not None or annotation is Any:
        return value  # dict[...] and the like: JSON already
    if annotation is uuid.UUID:
        return uuid.UUID(value)
    if annotation is datetime:
        return datetime.fromisoformat(value)
    if annotation is float:
        return float(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return decode(annotation, value)
    return value


def _unexpected(cls: type, data: Any) -> MnemostoreError:
    shown = repr(data)
    shown = shown if len(shown) <= 200 else shown[:200] + "…"
    return MnemostoreError(
        f"the service answered something that is not a {cls.__name__}: {shown}. Is it a mnemostore service of "
        "this client's version (GET /openapi.json)?"
    )
