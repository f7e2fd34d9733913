"""LangGraph's store operations over a tenant store (async; ``_store.py`` is generated from this).

Each operation of a batch is one tenant store call (``put_graph_item``, ``get_graph_item``, ``delete_graph_item``,
``search_graph_items``, ``list_graph_namespaces``); ``_items`` converts. Filters the database cannot evaluate
(operators, nested objects) are applied to the items read, page by page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from langgraph.store.base import GetOp, Item, ListNamespacesOp, Op, PutOp, Result, SearchItem, SearchOp

from mnemostore.domain import GraphItem
from mnemostore.integrations.langgraph._items import (
    content_of,
    matches,
    matches_conditions,
    namespace_bounds,
    split_filter,
    to_item,
    to_search_item,
)
from mnemostore.service.store_async import AsyncTenantStore

# Items read per call while a filter the database cannot evaluate is applied; and the most a query ranks.
_CHUNK = 200
_RANKED = 1000


class AsyncItemStore:
    """The operations of LangGraph's ``BaseStore`` on one tenant's graph items."""

    def __init__(
        self,
        tenant: AsyncTenantStore,
        *,
        fields: Sequence[str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.tenant = tenant
        self.fields = list(fields) if fields else ["$"]
        self.clock = clock

    def _now(self) -> datetime | None:
        return self.clock() if self.clock is not None else None

    async def run(self, ops: Iterable[Op]) -> list[Result]:
        """The result of each operation, in order (puts and deletes: None)."""
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(await self.get(op))
            elif isinstance(op, SearchOp):
                results.append(await self.search(op))
            elif isinstance(op, PutOp):
                await self.put(op)
                results.append(None)
            elif isinstance(op, ListNamespacesOp):
                results.append(await self.list_namespaces(op))
            else:
                raise TypeError(f"unknown store operation {type(op).__name__}")
        return results

    async def get(self, op: GetOp) -> Item | None:
        found = await self.tenant.get_graph_item(op.namespace, op.key, refresh_ttl=op.refresh_ttl, now=self._now())
        return to_item(found) if found is not None else None

    async def put(self, op: PutOp) -> None:
        if op.value is None:
            await self.tenant.delete_graph_item(op.namespace, op.key)
            return
        fields: Sequence[str] | Literal[False] = self.fields if op.index is None else op.index
        await self.tenant.put_graph_item(
            op.namespace,
            op.key,
            op.value,
            content=content_of(op.value, fields),
            ttl_minutes=op.ttl,
            now=self._now(),
        )

    async def search(self, op: SearchOp) -> list[SearchItem]:
        stored, rest = split_filter(op.filter)
        now = self._now()
        if not rest:
            found = await self.tenant.search_graph_items(
                op.namespace_prefix,
                query=op.query,
                filter=stored,
                limit=op.limit,
                offset=op.offset,
                refresh_ttl=op.refresh_ttl,
                now=now,
            )
            return [to_search_item(item) for item in found]
        wanted = op.offset + op.limit
        matched: list[GraphItem] = []
        if op.query is not None:
            ranked = await self.tenant.search_graph_items(
                op.namespace_prefix, query=op.query, filter=stored, limit=_RANKED, refresh_ttl=False, now=now
            )
            matched = [item for item in ranked if matches(item.value, rest)]
        else:
            skip = 0
            while len(matched) < wanted:
                page = await self.tenant.search_graph_items(
                    op.namespace_prefix, filter=stored, limit=_CHUNK, offset=skip, refresh_ttl=False, now=now
                )
                matched += [item for item in page if matches(item.value, rest)]
                if len(page) < _CHUNK:
                    break
                skip += _CHUNK
        chosen = matched[op.offset : wanted]
        if op.refresh_ttl:
            for item in chosen:
                if item.ttl_minutes is not None:
                    await self.tenant.get_graph_item(item.namespace, item.key, refresh_ttl=True, now=now)
        return [to_search_item(item) for item in chosen]

    async def list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        prefix, suffix = namespace_bounds(op.match_conditions)
        conditions = list(op.match_conditions or ())
        if len(conditions) <= 2 and len({c.match_type for c in conditions}) == len(conditions):
            return await self.tenant.list_graph_namespaces(
                prefix=prefix, suffix=suffix, max_depth=op.max_depth, limit=op.limit, offset=op.offset, now=self._now()
            )
        every = await self.tenant.list_graph_namespaces(prefix=prefix, suffix=suffix, limit=_RANKED, now=self._now())
        kept: dict[tuple[str, ...], Any] = {}
        for namespace in every:
            if matches_conditions(namespace, conditions):
                kept.setdefault(namespace[: op.max_depth] if op.max_depth else namespace, None)
        return sorted(kept)[op.offset : op.offset + op.limit]

    async def sweep(self) -> int:
        """Delete the items whose time to live ran out; returns how many."""
        return await self.tenant.purge_expired_graph_items(now=self._now())
