"""Graph items: the long-term items of agent frameworks (LangGraph's store), JSON objects by namespace and key.

An item's ``content`` is the text the search index embeds (the framework picks it from the value): it is indexed
like messages, memories and knowledge (kind ``graph_items``), so ``search_graph_items`` ranks by meaning where
semantic search runs and by words elsewhere. An item with a time to live expires that many minutes after it was
last written or read (reads may refresh it); expired items are never returned, and ``purge_expired_graph_items``
deletes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from mnemostore.domain import GraphItem, new_id
from mnemostore.errors import InvalidInput
from mnemostore.search import ItemKind, SearchFilters, SearchMode
from mnemostore.service import _validation as v
from mnemostore.service._inputs import utc_now
from mnemostore.service._scope_async import AsyncTenantScope

_SEPARATOR = "."
_MAX_NAMESPACE = 1000
_MAX_KEY = 500
# A query's ranked candidates (offset + limit) are read at most this many at a time.
_MAX_RANKED = 1000
_MAX_TTL_MINUTES = 100 * 366 * 24 * 60
"""A time to live of at most 100 years keeps every expiry a date both backends hold (a longer one overflows)."""


def _namespace(labels: Sequence[str], field: str = "namespace", *, empty: bool = False) -> str | None:
    """The stored form of a namespace (labels joined by "."), checked; None for an empty one when allowed."""
    if isinstance(labels, str):
        raise InvalidInput(f'{field} must be a tuple of labels, e.g. ("users", "alice"), not the string {labels!r}')
    parts = list(labels)
    if not parts:
        if empty:
            return None
        raise InvalidInput(f"{field} must have at least one label")
    for label in parts:
        if not isinstance(label, str) or not label:
            raise InvalidInput(f"{field} labels must be non-empty strings, got {label!r}")
        if _SEPARATOR in label:
            raise InvalidInput(f"{field} label {label!r} contains a '.', which namespaces use between labels")
        v.check_text(label, field)
    joined = _SEPARATOR.join(parts)
    if len(joined) > _MAX_NAMESPACE:
        raise InvalidInput(f"{field} is {len(joined)} characters joined, over the {_MAX_NAMESPACE}-character maximum")
    return joined


def _filters(equals: Mapping[str, Any] | None) -> dict[str, Any]:
    wanted = v.check_json(equals, "filter", max_bytes=64_000, allow_none=True)
    for key, value in wanted.items():
        if isinstance(value, dict | list):
            raise InvalidInput(f"filter {key!r} must be a string, number, boolean or null (equality on a value key)")
    return wanted


def _matches(namespace: tuple[str, ...], prefix: Sequence[str], suffix: Sequence[str]) -> bool:
    """Whether ``namespace`` starts with ``prefix`` and ends with ``suffix`` ("*" matches any one label)."""
    if len(namespace) < max(len(prefix), len(suffix)):
        return False
    head = all(p == "*" or p == n for p, n in zip(prefix, namespace, strict=False))
    tail = all(s == "*" or s == n for s, n in zip(reversed(suffix), reversed(namespace), strict=False))
    return head and tail


class AsyncGraphItems(AsyncTenantScope):
    """The tenant's graph items: JSON objects by namespace and key, searchable, with an optional time to live."""

    async def put_graph_item(
        self,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        *,
        content: str | None = None,
        ttl_minutes: float | None = None,
        now: datetime | None = None,
    ) -> GraphItem:
        """Save the item of ``namespace`` and ``key`` (replacing its value, content and time to live).

        Args:
            content: the text to index for search (None or "": the item is not searchable by query, only by
                namespace and value filters).
            ttl_minutes: the item expires this many minutes after this write (or a refreshing read); None: never.
            now: the time of the write (default: now).

        Raises:
            InvalidInput: a label is empty or holds a ".", the key is empty or too long, ``ttl_minutes`` is not
                positive. InvalidMetadata: ``value`` is not a JSON object. ContentTooLarge: ``content`` or the
                value is over the content size limit.
        """
        space = _namespace(namespace) or ""
        name = v.check_name(key, "key", max_len=_MAX_KEY, required=True) or ""
        document = v.check_json(value, "value", max_bytes=self._settings.max_content_bytes)
        text = content or ""
        v.check_content(text, field="content", max_bytes=self._settings.max_content_bytes)
        if ttl_minutes is not None and not 0 < v.check_number(ttl_minutes, "ttl_minutes") <= _MAX_TTL_MINUTES:
            raise InvalidInput(
                f"ttl_minutes must be more than 0 and at most {_MAX_TTL_MINUTES} (100 years; None: no expiry), "
                f"got {ttl_minutes!r}"
            )
        stamp = v.check_time(now, "now") or utc_now()
        ttl = float(ttl_minutes) if ttl_minutes is not None else None
        values = {
            "id": new_id(),
            "namespace": space,
            "key": name,
            "value": document,
            "content": text,
            "created_at": stamp,
            "updated_at": stamp,
            "expires_at": stamp + timedelta(minutes=ttl) if ttl is not None else None,
            "ttl_minutes": ttl,
        }
        async with self._tx(write=True) as uow:
            before = await uow.graph_items.content_of(space, name)
            item = await uow.graph_items.upsert(values)
            if text and text != before:
                await self._enqueue(uow, ItemKind.GRAPH_ITEM, [item.id], stamp)
        return item

    async def get_graph_item(
        self, namespace: Sequence[str], key: str, *, refresh_ttl: bool = True, now: datetime | None = None
    ) -> GraphItem | None:
        """The item, or None when there is none or it has expired; ``refresh_ttl`` restarts its time to live."""
        space = _namespace(namespace) or ""
        name = v.check_name(key, "key", max_len=_MAX_KEY, required=True) or ""
        stamp = v.check_time(now, "now") or utc_now()
        async with self._tx(write=refresh_ttl) as uow:
            item = await uow.graph_items.get(space, name, alive_at=stamp)
            if item is not None and refresh_ttl and item.ttl_minutes is not None:
                await uow.graph_items.refresh([item], stamp)
        return item

    async def delete_graph_item(self, namespace: Sequence[str], key: str) -> bool:
        """Delete the item (and its index entries); False when there was none."""
        space = _namespace(namespace) or ""
        name = v.check_name(key, "key", max_len=_MAX_KEY, required=True) or ""
        async with self._tx(write=True) as uow:
            gone = await uow.graph_items.delete(space, name)
        if gone is not None:
            await self._runtime.vectors_removed(self.tenant_id, kind=ItemKind.GRAPH_ITEM, ids=[gone])
        return gone is not None

    async def search_graph_items(
        self,
        namespace_prefix: Sequence[str] = (),
        *,
        query: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool = True,
        now: datetime | None = None,
    ) -> list[GraphItem]:
        """Live items in or under ``namespace_prefix`` (every item for ``()``) whose value has each key of
        ``filter`` with that value.

        Without ``query``: latest update first. With one: best match first (``score`` set), ranked as ``search``
        ranks in ``auto`` mode: by meaning and words where semantic search runs, by words elsewhere; items without
        content are not found by a query. ``refresh_ttl`` restarts the time to live of the items returned.
        """
        space = _namespace(namespace_prefix, "namespace_prefix", empty=True)
        equals = _filters(filter)
        v.check_limit(limit)
        v.check_int(offset, "offset")
        stamp = v.check_time(now, "now") or utc_now()
        if query is None:
            async with self._tx(write=refresh_ttl) as uow:
                found = await uow.graph_items.find(
                    namespace=space, equals=equals, alive_at=stamp, limit=limit, offset=offset
                )
                if refresh_ttl:
                    await uow.graph_items.refresh(found, stamp)
            return found
        v.check_text(query, "query")
        if not query.strip():
            raise InvalidInput("query is empty: pass the words or the question to search for, or None to list")
        wanted = offset + limit
        if wanted > _MAX_RANKED:
            raise InvalidInput(f"offset + limit is {wanted}, over the {_MAX_RANKED} items a query ranks")
        await self._runtime.ensure_schema()
        if self._runtime.search_engine.embedder() is not None:
            await self._runtime.embed_pending(self.tenant_id)
        results = await self._runtime.search_engine.search(
            self.tenant_id,
            query,
            mode=SearchMode.AUTO,
            kinds=[ItemKind.GRAPH_ITEM],
            filters=SearchFilters(namespace=space, alive_at=stamp, metadata=equals),
            min_score=None,
            limit=wanted,
            recency_boost=0.0,
            importance_boost=0.0,
            weights=None,
        )
        hits = list(results)[offset:]
        async with self._tx(write=refresh_ttl) as uow:
            items = await uow.graph_items.by_ids([hit.id for hit in hits], alive_at=stamp)
            ranked = []
            for hit in hits:
                item = items.get(hit.id)
                if item is not None:
                    item.score = hit.score
                    ranked.append(item)
            if refresh_ttl:
                await uow.graph_items.refresh(ranked, stamp)
        return ranked

    async def list_graph_namespaces(
        self,
        *,
        prefix: Sequence[str] = (),
        suffix: Sequence[str] = (),
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
        now: datetime | None = None,
    ) -> list[tuple[str, ...]]:
        """The namespaces that hold live items, in order: those starting with ``prefix`` and ending with
        ``suffix`` ("*" stands for any one label), cut to their first ``max_depth`` labels (then de-duplicated)."""
        for labels, field in ((prefix, "prefix"), (suffix, "suffix")):
            if isinstance(labels, str):
                raise InvalidInput(f"{field} must be a tuple of labels, not the string {labels!r}")
        v.check_limit(limit)
        v.check_int(offset, "offset")
        if max_depth is not None:
            v.check_int(max_depth, "max_depth (None: no limit)", minimum=1)
        fixed = []
        for label in prefix:
            if label == "*":
                break
            fixed.append(label)
        stamp = v.check_time(now, "now") or utc_now()
        async with self._tx() as uow:
            stored = await uow.graph_items.namespaces(prefix=_namespace(fixed, "prefix", empty=True), alive_at=stamp)
        found: dict[tuple[str, ...], None] = {}
        for joined in stored:
            namespace = tuple(joined.split(_SEPARATOR))
            if _matches(namespace, list(prefix), list(suffix)):
                found.setdefault(namespace[:max_depth] if max_depth is not None else namespace, None)
        return sorted(found)[offset : offset + limit]

    async def purge_expired_graph_items(self, *, now: datetime | None = None) -> int:
        """Delete the items whose time to live ran out by ``now``; returns how many."""
        stamp = v.check_time(now, "now") or utc_now()
        async with self._tx(write=True) as uow:
            purged = await uow.graph_items.purge(stamp)
        if purged:
            await self._runtime.vectors_removed(self.tenant_id, kind=ItemKind.GRAPH_ITEM, sweep=True)
        return purged
