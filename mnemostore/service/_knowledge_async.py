"""Knowledge chunks: documents split into searchable pieces, keyed by source."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mnemostore.domain import (
    KnowledgeChunk,
    Page,
    new_id,
)
from mnemostore.errors import (
    InvalidInput,
    KnowledgeChunkNotFound,
)
from mnemostore.search import ItemKind
from mnemostore.service import _validation as v
from mnemostore.service._inputs import as_id, knowledge_rows, utc_now
from mnemostore.service._scope_async import AsyncTenantScope


class AsyncKnowledge(AsyncTenantScope):
    """The tenant's knowledge chunks."""

    async def upsert_knowledge(
        self,
        source: str,
        external_id: str,
        content: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> KnowledgeChunk:
        """Insert or update the chunk keyed by (source, external_id); unchanged content writes nothing.

        ``vector``, ``model``: the chunk's embedding computed by the caller (see ``upsert_knowledge_chunks``)."""
        chunk: dict[str, Any] = {"external_id": external_id, "content": content, "title": title, "metadata": metadata}
        if vector is not None:
            chunk["vector"] = vector
        return (await self.upsert_knowledge_chunks(source, [chunk], model=model))[0]

    async def upsert_knowledge_chunks(
        self, source: str, chunks: Iterable[Mapping[str, Any]], *, model: str | None = None
    ) -> list[KnowledgeChunk]:
        """Bulk upsert of chunks ``{"external_id", "content", "title"?, "metadata"?, "vector"?}`` from one source.

        Idempotent: re-sending the same chunks changes nothing (not even ``updated_at``).

        A chunk's ``vector`` is its embedding computed by the caller with the model named ``model`` (default: the
        store's embedder): stored as given, never re-embedded (nor by ``reindex``), found by ``search(vector=,
        model=)``; every vector of a model has one dimension in a tenant. A chunk whose content changes without a
        vector loses the caller's old one and is queued for the store's embedder.

        Raises:
            InvalidVector: a vector is not a list of finite numbers, or is given with ``model`` on a store without
                an embedder to name it (VectorDimensionMismatch: not of the model's dimension).
            VectorSearchUnavailable: vectors given on a PostgreSQL without pgvector.
        """
        v.check_name(source, "source", max_len=500, required=True)
        chunks = list(chunks)
        vectors: dict[str, list[float]] = {}
        model_name: str | None = None
        for index, chunk in enumerate(chunks):
            if isinstance(chunk, Mapping) and chunk.get("vector") is not None:
                checked, model_name = self._caller_vector(chunk["vector"], model, field=f"chunks[{index}].vector")
                vectors[str(chunk.get("external_id"))] = checked
        if model is not None and not vectors:
            raise InvalidInput("model= names the model of the chunks' vectors: give each chunk its vector too")
        rows = knowledge_rows(
            chunks,
            max_content_bytes=self._settings.max_content_bytes,
            max_metadata_bytes=self._settings.max_metadata_bytes,
        )
        if not rows:
            return []
        now = utc_now()
        async with self._tx(write=True) as uow:
            existing = await uow.knowledge.get_by_keys(source, [r["external_id"] for r in rows])
            inserts: list[dict[str, Any]] = []
            changed: list[uuid.UUID] = []
            delta = 0
            out: list[KnowledgeChunk] = []
            supplied: list[tuple[uuid.UUID, list[float]]] = []
            for row in rows:
                old = existing.get(row["external_id"])
                vector = vectors.get(row["external_id"])
                if vector is not None:
                    supplied.append((old.id if old is not None else new_id(), vector))
                if old is None:
                    values = {
                        "id": supplied[-1][0] if vector is not None else new_id(),
                        "source": source,
                        "created_at": now,
                        "updated_at": now,
                        **row,
                    }
                    inserts.append(values)
                    delta += row["content_bytes"]
                    out.append(KnowledgeChunk(tenant_id=self.tenant_id, **_chunk_fields(values)))
                elif (old.content_hash, old.title, old.metadata) == (
                    row["content_hash"],
                    row["title"],
                    row["metadata"],
                ):
                    out.append(old)
                else:
                    delta += row["content_bytes"] - len(old.content.encode())
                    await uow.knowledge.update(old.id, {**row, "updated_at": now})
                    if old.content_hash != row["content_hash"]:
                        changed.append(old.id)
                    values = {"id": old.id, "source": source, "created_at": old.created_at, "updated_at": now, **row}
                    out.append(KnowledgeChunk(tenant_id=self.tenant_id, **_chunk_fields(values)))
            if delta:
                await self._charge(uow, storage_bytes=delta)
            await uow.knowledge.insert_many(inserts)
            with_vector = {item for item, _ in supplied}
            if model_name is not None:
                await self._put_vectors(uow, ItemKind.KNOWLEDGE, supplied, model_name, now)
            if changed:
                await uow.index_jobs.drop_supplied(ItemKind.KNOWLEDGE, [i for i in changed if i not in with_vector])
            queued = [row["id"] for row in inserts] + changed
            await self._enqueue(uow, ItemKind.KNOWLEDGE, [i for i in queued if i not in with_vector], now)
        return out

    async def get_knowledge_chunk(self, chunk_id: uuid.UUID | str) -> KnowledgeChunk | None:
        """The chunk, or None when the tenant has no chunk with this id."""
        async with self._tx() as uow:
            return await uow.knowledge.get(as_id(chunk_id, "chunk_id"))

    async def get_knowledge_chunks(self, source: str, external_ids: Sequence[str]) -> list[KnowledgeChunk]:
        """The source's chunks with these external ids (your keys, as given to ``upsert_knowledge``), in the order
        asked; an id with no chunk is left out."""
        v.check_text(source, "source")
        keys = _external_ids(external_ids)
        found: dict[str, KnowledgeChunk] = {}
        async with self._tx() as uow:
            for start in range(0, len(keys), _KEYS_PER_STATEMENT):
                found.update(await uow.knowledge.get_by_keys(source, keys[start : start + _KEYS_PER_STATEMENT]))
        return [found[key] for key in keys if key in found]

    async def list_knowledge(self, source: str, *, limit: int = 100, cursor: str | None = None) -> Page[KnowledgeChunk]:
        """Chunks of one source, ordered by external id."""
        v.check_limit(limit)
        v.check_text(source, "source")
        if cursor is not None:
            v.check_text(cursor, "cursor")
        async with self._tx() as uow:
            items = await uow.knowledge.list_by_source(source, limit=limit + 1, after=cursor)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=items[-1].external_id if more else None)

    async def delete_knowledge_chunk(self, chunk_id: uuid.UUID | str) -> None:
        """Delete one chunk (and its index entries) and release its bytes from the tenant's usage.

        Raises:
            KnowledgeChunkNotFound: the tenant has no chunk with this id.
        """
        cid = as_id(chunk_id, "chunk_id")
        async with self._tx(write=True) as uow:
            gone = await uow.knowledge.delete(cid)
            if gone is None:
                raise KnowledgeChunkNotFound(cid)
            await self._charge(uow, storage_bytes=-len(gone.content.encode()))
        await self._runtime.vectors_removed(self.tenant_id, kind=ItemKind.KNOWLEDGE, ids=[cid])

    async def delete_knowledge_chunks(self, source: str, external_ids: Sequence[str]) -> int:
        """Delete the source's chunks with these external ids (and their index entries) in one transaction, and
        release their bytes from the tenant's usage; an id with no chunk is skipped. Returns how many were deleted."""
        v.check_text(source, "source")
        keys = _external_ids(external_ids)
        if not keys:
            return 0
        async with self._tx(write=True) as uow:
            gone: list[KnowledgeChunk] = []
            for start in range(0, len(keys), _KEYS_PER_STATEMENT):
                gone += await uow.knowledge.delete_by_keys(source, keys[start : start + _KEYS_PER_STATEMENT])
            size = sum(len(chunk.content.encode()) for chunk in gone)
            if size:
                await self._charge(uow, storage_bytes=-size)
        await self._runtime.vectors_removed(self.tenant_id, kind=ItemKind.KNOWLEDGE, ids=[c.id for c in gone])
        return len(gone)


# External ids per IN (...) list: far below SQLite's limit on bound parameters.
_KEYS_PER_STATEMENT = 500


def _external_ids(external_ids: Sequence[str]) -> list[str]:
    """The distinct external ids, in order; a lone string is refused (it would be read as its characters)."""
    if isinstance(external_ids, str) or not isinstance(external_ids, Sequence):
        raise InvalidInput(f"external_ids must be a list of strings, got {type(external_ids).__name__}")
    for index, key in enumerate(external_ids):
        v.check_text(key, f"external_ids[{index}]")
    return list(dict.fromkeys(external_ids))


def _chunk_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "source", "external_id", "title", "content", "content_hash", "metadata", "created_at", "updated_at")
    return {k: values[k] for k in keys}
