"""Milvus kept in step with the ``embeddings`` table (async; ``_vectors.py`` is generated from this file).

With ``vector_backend=milvus`` the table stays the durable copy of every vector (reindex, restore and export read
it) and Milvus (``mnemostore.search.MilvusIndex``) answers the vector queries. The rule that keeps them in step:
**Milvus holds an entity for every committed vector**, and possibly stale ones, which never reach a caller.

* Written before the commit. The indexer writes a batch's entities inside the transaction that stores their
  vectors and marks their jobs done, after locking the jobs (a newer claim waits) and the items (a delete waits,
  on PostgreSQL FOR KEY SHARE; SQLite's write transaction excludes it anyway). A process killed between the
  Milvus write and the commit leaves the jobs claimed: they run again when their lease ends and write the same
  primary keys, so every item ends up with exactly one entity. A caller's vectors (``vector=``) are written the
  same way, in the transaction of their item.
* Removed after the commit. Deleting items removes their entities once the delete committed (by key, or for a
  deleted tenant, user or conversation by filter); a delete that waited for an indexing transaction removes what
  that transaction wrote. Where a removal fails or a process dies first, the entity is only stale.
* Stale entities are harmless: every hit is read back from the database with the filters and the vector's model
  (``AsyncSearchRepository.hydrate``), so an entity whose item is gone, or whose vector is now of another model,
  drops out there. The search then removes those it met; ``sweep`` removes the rest (of a tenant, or all), and
  ``rebuild`` (``mnemostore reindex``) also writes any entity Milvus lacks.

An entity is only removed as stale when its item is gone or its vector is of another model (``stale``), never
because the table has no vector yet: that vector may be on its way, written to Milvus and not yet committed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from mnemostore.config import Settings
from mnemostore.errors import MnemostoreError
from mnemostore.search import ItemKind, MilvusIndex, VectorEntity, entity_key
from mnemostore.store import AsyncDatabase

__all__ = ["AsyncVectorMirror"]

_log = logging.getLogger("mnemostore.search")

ItemKey = tuple[uuid.UUID, ItemKind, uuid.UUID]
# Vectors read from the table per transaction while rebuilding.
PAGE = 1000


class AsyncVectorMirror:
    """The store's Milvus (see the module's documentation); its calls run on threads in the async store."""

    def __init__(self, db: AsyncDatabase, settings: Settings) -> None:
        self._db = db
        token = settings.milvus_token.get_secret_value() if settings.milvus_token is not None else None
        self.index = MilvusIndex(
            settings.milvus_uri,
            token=token,
            prefix=settings.milvus_collection_prefix,
            timeout_seconds=settings.milvus_timeout_seconds,
            ef_search=settings.hnsw_ef_search,
        )

    async def _run(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if True:  # ASYNC
            return await asyncio.to_thread(call, *args, **kwargs)
        else:
            return call(*args, **kwargs)

    def close(self) -> None:
        self.index.close()

    async def upsert(self, model: str, dimension: int, entities: Sequence[VectorEntity]) -> None:
        """Write the entities (inside the transaction that commits their vectors: BackendUnavailable rolls it
        back)."""
        if entities:
            await self._run(self.index.upsert, model, dimension, entities)

    async def search(
        self,
        model: str,
        dimension: int,
        vector: Sequence[float],
        k: int,
        *,
        tenant_id: uuid.UUID,
        kind: ItemKind,
        conditions: Sequence[str],
        item_ids: Sequence[uuid.UUID] | None,
    ) -> list[tuple[uuid.UUID, float]]:
        found: list[tuple[uuid.UUID, float]] = await self._run(
            self.index.search,
            model,
            dimension,
            vector,
            k,
            tenant_id=tenant_id,
            kind=kind,
            conditions=conditions,
            item_ids=item_ids,
        )
        return found

    async def removed(
        self,
        tenant_id: uuid.UUID,
        *,
        kind: ItemKind | None = None,
        ids: Sequence[uuid.UUID] = (),
        owner_id: uuid.UUID | None = None,
        conversation_id: uuid.UUID | None = None,
        agent_id: str | None = None,
        sweep: bool = False,
    ) -> None:
        """After a delete committed: remove the entities of ``ids`` (of ``kind``); with ``sweep``, the stale ones
        among the tenant's entities of ``kind``, ``owner_id``, ``conversation_id`` and ``agent_id`` (what the
        delete may have emptied, where new items may come: they are kept); else every entity of that scope (a
        deleted tenant, user or conversation). Never raises: a failure leaves stale entities, which searches
        skip and ``sweep`` removes."""
        try:
            if ids:
                assert kind is not None
                await self._run(self.index.delete, [(tenant_id, kind, item) for item in ids])
            elif sweep:
                await self.sweep(
                    tenant_id, kind=kind, owner_id=owner_id, conversation_id=conversation_id, agent_id=agent_id
                )
            else:
                assert agent_id is None
                await self._run(
                    self.index.delete_where, tenant_id, kind=kind, owner_id=owner_id, conversation_id=conversation_id
                )
        except MnemostoreError as error:
            _log.warning(
                "milvus: could not remove the vectors of deleted items of tenant %s (searches skip them; "
                "`mnemostore reindex` removes them): %s",
                tenant_id,
                error,
            )

    async def drop_stale(
        self, tenant_id: uuid.UUID, kind: ItemKind, space: tuple[str, int], ids: Sequence[uuid.UUID]
    ) -> None:
        """Remove the entities of ``ids`` in ``model``'s collection that are stale (a search met them); never
        raises."""
        model, dimension = space
        try:
            async with self._db.transaction(tenant_id) as uow:
                stale = await uow.index_jobs.stale(tenant_id, kind, ids, model=model)
            if stale:
                name = self.index.collection_name(model, dimension)
                await self._run(self.index.delete, [(tenant_id, kind, item) for item in stale], names=[name])
        except MnemostoreError as error:
            _log.warning("milvus: could not remove stale vectors of tenant %s: %s", tenant_id, error)

    async def sweep(
        self,
        tenant_id: uuid.UUID | None = None,
        *,
        kind: ItemKind | None = None,
        owner_id: uuid.UUID | None = None,
        conversation_id: uuid.UUID | None = None,
        agent_id: str | None = None,
    ) -> int:
        """Remove the stale entities (``stale``) of every collection, of ``tenant_id`` (None: every tenant's, in
        the admin scope) and the given scope; returns how many."""
        removed = 0
        collections: dict[str, tuple[str, int] | None] = await self._run(self.index.collections)
        for name, space in collections.items():
            if space is None:
                _log.warning("milvus: collection %s does not say its model; left alone", name)
                continue
            batches = self.index.scan(
                name,
                tenant_id=tenant_id,
                kind=kind,
                owner_id=owner_id,
                conversation_id=conversation_id,
                agent_id=agent_id,
            )
            stale: list[ItemKey] = []
            try:
                while True:
                    batch: list[ItemKey] | None = await self._run(next, batches, None)
                    if batch is None:
                        break
                    stale += await self._stale(tenant_id, space[0], batch)
            finally:
                batches.close()
            if stale:
                await self._run(self.index.delete, stale, names=[name])
            removed += len(stale)
        return removed

    async def _stale(self, tenant_id: uuid.UUID | None, model: str, keys: Sequence[ItemKey]) -> list[ItemKey]:
        groups: dict[tuple[uuid.UUID, ItemKind], list[uuid.UUID]] = {}
        for tenant, kind, item in keys:
            groups.setdefault((tenant, kind), []).append(item)
        stale: list[ItemKey] = []
        async with self._db.transaction(tenant_id) as uow:
            for (tenant, kind), items in groups.items():
                stale += [(tenant, kind, item) for item in await uow.index_jobs.stale(tenant, kind, items, model=model)]
        return stale

    async def rebuild(self, *, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Make Milvus hold exactly the table's vectors: write the entities it lacks (every tenant's, read in the
        admin scope), then remove the stale ones (``sweep``). Returns (entities written, entities removed).
        ``progress`` is called with the number of vectors looked at after each page."""
        written = 0
        for kind in ItemKind:
            after: tuple[uuid.UUID, uuid.UUID] | None = None
            while True:
                async with self._db.transaction(None) as uow:
                    page = await uow.index_jobs.vector_page(kind, after=after, limit=PAGE)
                if not page:
                    break
                after = (page[-1][2].tenant_id, page[-1][2].item_id)
                spaces: dict[tuple[str, int], list[VectorEntity]] = {}
                for model, dimension, entity in page:
                    spaces.setdefault((model, dimension), []).append(entity)
                for (model, dimension), entities in spaces.items():
                    written += await self._write_missing(model, dimension, entities)
                if progress is not None:
                    progress(len(page))
                if len(page) < PAGE:
                    break
        return written, await self.sweep()

    async def _write_missing(self, model: str, dimension: int, entities: list[VectorEntity]) -> int:
        name = self.index.collection_name(model, dimension)
        names: list[str] = await self._run(self.index.names)
        if name in names:
            keys = [(e.tenant_id, e.kind, e.item_id) for e in entities]
            present: set[str] = await self._run(self.index.present, name, keys)
            entities = [e for e in entities if entity_key(e.tenant_id, e.kind, e.item_id) not in present]
        await self.upsert(model, dimension, entities)
        return len(entities)
