"""LangGraph store values <-> mnemostore's graph items (pure: both stores use it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langgraph.store.base import Item, MatchCondition, SearchItem
from langgraph.store.base.embed import get_text_at_path, tokenize_path

from mnemostore.domain import GraphItem
from mnemostore.errors import InvalidInput

__all__ = [
    "content_of",
    "matches",
    "matches_conditions",
    "namespace_bounds",
    "split_filter",
    "to_item",
    "to_search_item",
]

_OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}


def content_of(value: Mapping[str, Any], fields: Sequence[str] | Literal[False] | None) -> str:
    """The text indexed for search: the value's text at each of ``fields`` (LangGraph's path syntax; None or
    ``["$"]``: the whole value as JSON), one line each; "" for ``False`` (not indexed)."""
    if fields is False:
        return ""
    paths = list(fields) if fields else ["$"]
    texts: list[str] = []
    for path in paths:
        if path == "$":
            texts.append(json.dumps(dict(value), sort_keys=True, ensure_ascii=False))
        else:
            texts.extend(text for text in get_text_at_path(value, tokenize_path(path)) if text)
    return "\n".join(texts)


def split_filter(filter: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter's conditions the database evaluates (equality of a top-level key with a scalar) and the rest
    (operators, nested objects, lists), which ``matches`` evaluates on the items read."""
    stored: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, wanted in (filter or {}).items():
        if isinstance(wanted, Mapping) and set(wanted) == {"$eq"} and _scalar(wanted["$eq"]):
            stored[key] = wanted["$eq"]
        elif _scalar(wanted):
            stored[key] = wanted
        else:
            rest[key] = wanted
    return stored, rest


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def matches(value: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    """Whether ``value`` passes every condition of ``filter`` (as LangGraph's stores compare JSON)."""
    return all(_compare(value.get(key), wanted) for key, wanted in filter.items())


def _compare(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(str(k).startswith("$") for k in wanted):
            return all(_operator(actual, op, operand) for op, operand in wanted.items())
        return isinstance(actual, Mapping) and all(_compare(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(wanted)
            and all(_compare(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)


def _operator(actual: Any, operator: str, operand: Any) -> bool:
    if operator not in _OPERATORS:
        raise InvalidInput(f"unknown filter operator {operator!r}: use one of {sorted(_OPERATORS)}")
    if operator == "$eq":
        return bool(actual == operand)
    if operator == "$ne":
        return bool(actual != operand)
    try:
        left, right = float(actual), float(operand)
    except (TypeError, ValueError):
        return False
    return {"$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right}[operator]


def namespace_bounds(conditions: Sequence[MatchCondition] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The first prefix and the first suffix of ``conditions`` (the store evaluates those)."""
    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()
    for condition in conditions or ():
        if condition.match_type == "prefix" and not prefix:
            prefix = tuple(condition.path)
        elif condition.match_type == "suffix" and not suffix:
            suffix = tuple(condition.path)
    return prefix, suffix


def matches_conditions(namespace: tuple[str, ...], conditions: Sequence[MatchCondition] | None) -> bool:
    for condition in conditions or ():
        path = tuple(condition.path)
        if len(namespace) < len(path):
            return False
        pairs = zip(namespace, path, strict=False)
        if condition.match_type == "suffix":
            pairs = zip(reversed(namespace), reversed(path), strict=False)
        if any(p != "*" and n != p for n, p in pairs):
            return False
    return True


def to_item(item: GraphItem) -> Item:
    return Item(
        value=item.value,
        key=item.key,
        namespace=item.namespace,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def to_search_item(item: GraphItem) -> SearchItem:
    return SearchItem(
        namespace=item.namespace,
        key=item.key,
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
        score=item.score,
    )
