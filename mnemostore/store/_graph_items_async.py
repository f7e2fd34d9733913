"""The repository of graph items: JSON documents by (namespace, key) with a time to live (async; ``_graph_items.py``
is generated from this).

A namespace is stored as its labels joined by "."; a namespace prefix is a range of the (tenant, namespace, key)
index. Expired items are left out of every read (``alive_at``) until ``purge`` deletes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mnemostore.domain import GraphItem
from mnemostore.search import ItemKind, SearchFilters
from mnemostore.store._crypto import FieldCodec
from mnemostore.store._repository_async import AsyncRepository, Values
from mnemostore.store._search_statements import filter_conditions, namespace_condition
from mnemostore.store.tables import graph_items

__all__ = ["SEPARATOR", "AsyncGraphItemRepository", "to_graph_item"]

SEPARATOR = "."


def to_graph_item(row: Any) -> GraphItem:
    return GraphItem(
        tenant_id=row.tenant_id,
        id=row.id,
        namespace=tuple(row.namespace.split(SEPARATOR)),
        key=row.key,
        value=row.value,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        ttl_minutes=row.ttl_minutes,
    )


class AsyncGraphItemRepository(AsyncRepository):
    """A tenant's graph items."""

    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID | None, *, dialect: str, codec: FieldCodec) -> None:
        super().__init__(conn, tenant_id, codec=codec)
        self._dialect = dialect

    def _alive(self, alive_at: datetime) -> sa.ColumnElement[bool]:
        c = graph_items.c
        return sa.or_(c.expires_at.is_(None), c.expires_at > alive_at)

    async def get(self, namespace: str, key: str, *, alive_at: datetime) -> GraphItem | None:
        c = graph_items.c
        query = sa.select(graph_items).where(
            c.tenant_id == self.tenant_id, c.namespace == namespace, c.key == key, self._alive(alive_at)
        )
        row = (await self._conn.execute(query)).first()
        return to_graph_item(row) if row else None

    async def content_of(self, namespace: str, key: str) -> str | None:
        """The indexed text of the item (expired or not), or None when there is none."""
        c = graph_items.c
        query = sa.select(c.content).where(c.tenant_id == self.tenant_id, c.namespace == namespace, c.key == key)
        return (await self._conn.execute(query)).scalar()

    async def upsert(self, values: Values) -> GraphItem:
        """Insert the item, or replace the value, content and time to live of the one with its namespace and key
        (its id and creation time stay)."""
        values = {"tenant_id": self.tenant_id, **values}
        insert = (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(graph_items)
        statement = (
            insert.values(values)
            .on_conflict_do_update(
                index_elements=["tenant_id", "namespace", "key"],
                set_={
                    name: insert.excluded[name]
                    for name in ("value", "content", "updated_at", "expires_at", "ttl_minutes")
                },
            )
            .returning(*graph_items.c)
        )
        row = (await self._conn.execute(statement)).one()
        return to_graph_item(row)

    async def delete(self, namespace: str, key: str) -> uuid.UUID | None:
        """Delete the item; its id, None when there was none."""
        c = graph_items.c
        statement = (
            sa.delete(graph_items)
            .where(c.tenant_id == self.tenant_id, c.namespace == namespace, c.key == key)
            .returning(c.id)
        )
        found: uuid.UUID | None = (await self._conn.execute(statement)).scalar()
        return found

    async def by_ids(self, ids: Sequence[uuid.UUID], *, alive_at: datetime) -> dict[uuid.UUID, GraphItem]:
        if not ids:
            return {}
        c = graph_items.c
        query = sa.select(graph_items).where(c.tenant_id == self.tenant_id, c.id.in_(ids), self._alive(alive_at))
        return {row.id: to_graph_item(row) for row in await self._conn.execute(query)}

    async def find(
        self,
        *,
        namespace: str | None,
        equals: Mapping[str, Any],
        alive_at: datetime,
        limit: int,
        offset: int,
    ) -> list[GraphItem]:
        """Items in or under ``namespace`` whose value has each key of ``equals`` with that value, latest update
        first."""
        filters = SearchFilters(namespace=namespace, alive_at=alive_at, metadata=dict(equals), searching=False)
        c = graph_items.c
        query = (
            sa.select(graph_items)
            .where(*filter_conditions(filters, ItemKind.GRAPH_ITEM, self.tenant_id, self._dialect))
            .order_by(c.updated_at.desc(), c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [to_graph_item(row) for row in await self._conn.execute(query)]

    async def refresh(self, items: Sequence[GraphItem], now: datetime) -> None:
        """Push the expiry of items with a time to live back to ``now`` plus that time."""
        c = graph_items.c
        by_ttl: dict[float, list[uuid.UUID]] = {}
        for item in items:
            if item.ttl_minutes is not None:
                by_ttl.setdefault(item.ttl_minutes, []).append(item.id)
        for ttl, ids in by_ttl.items():
            expires = now + timedelta(minutes=ttl)
            await self._conn.execute(
                sa.update(graph_items).where(c.tenant_id == self.tenant_id, c.id.in_(ids)).values(expires_at=expires)
            )
            for item in items:
                if item.id in ids:
                    item.expires_at = expires

    async def namespaces(self, *, prefix: str | None, alive_at: datetime) -> list[str]:
        """The distinct namespaces of live items (in or under ``prefix``), in order."""
        c = graph_items.c
        query = sa.select(c.namespace).distinct().where(c.tenant_id == self.tenant_id, self._alive(alive_at))
        if prefix is not None:
            query = query.where(namespace_condition(c.namespace, prefix))
        return list((await self._conn.execute(query.order_by(c.namespace))).scalars())

    async def purge(self, now: datetime) -> int:
        """Delete the items that expired by ``now``; returns how many."""
        c = graph_items.c
        statement = sa.delete(graph_items).where(
            c.tenant_id == self.tenant_id, c.expires_at.is_not(None), c.expires_at <= now
        )
        return int((await self._conn.execute(statement)).rowcount)
