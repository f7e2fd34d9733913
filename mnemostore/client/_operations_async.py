"""Memory updates, segments and bulk deletes, knowledge by external ids, and the key's own tenant (its settings,
indexing backlog and export): the client's part for those routes beside the resources.

(async; ``_operations.py`` is generated from this file.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from mnemostore.client import _endpoints as ep
from mnemostore.client._base_async import AsyncConnection
from mnemostore.client._codec import UNSET, Unset, decode, decode_list, present
from mnemostore.client._endpoints import calls
from mnemostore.client._memories_async import floats
from mnemostore.domain import KnowledgeChunk, MemoryKind, MemoryRecord, MemoryTier, Tenant
from mnemostore.search import IndexingStatus

__all__ = ["AsyncOperationsApi"]


class AsyncOperationsApi(AsyncConnection):
    """Memory updates and segments, bulk deletes, knowledge lookups, and the key's own tenant."""

    @calls(ep.UPDATE_MEMORY)
    async def update_memory(
        self,
        memory_id: uuid.UUID | str,
        *,
        content: str | Unset = UNSET,
        kind: MemoryKind | str | Unset = UNSET,
        tier: MemoryTier | str | Unset = UNSET,
        importance: float | Unset = UNSET,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> MemoryRecord:
        """Change the given fields of a memory (``expires_at=None``: never expires); a change of content,
        importance or metadata keeps the previous state as a version (``get_memory_history``). ``vector``,
        ``model``: the caller's new embedding of the memory (as in ``store_memory``).

        Raises:
            MemoryNotFound: no such memory in this tenant.
        """
        body = present(
            content=content, kind=kind, tier=tier, importance=importance, expires_at=expires_at, metadata=metadata
        )
        if vector is not None:
            body["vector"] = floats(vector)
        if model is not None:
            body["model"] = model
        return decode(MemoryRecord, await self._json(ep.UPDATE_MEMORY, path={"memory_id": memory_id}, body=body))

    @calls(ep.ADD_MEMORY_SEGMENT)
    async def add_memory_segment(
        self,
        content: str,
        *,
        source_message_ids: Sequence[uuid.UUID | str],
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        tier: MemoryTier | str = MemoryTier.LONG_TERM,
        compression_level: int = 1,
        importance: float = 0.5,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> MemoryRecord:
        """Store a compressed memory segment: a summary (kind ``summary``) of the messages it names."""
        body = present(
            content=content,
            source_message_ids=list(source_message_ids),
            user_id=user_id,
            agent_id=agent_id,
            tier=tier,
            compression_level=compression_level,
            importance=importance,
            expires_at=expires_at,
            metadata=metadata,
        )
        return decode(MemoryRecord, await self._json(ep.ADD_MEMORY_SEGMENT, body=body))

    @calls(ep.DELETE_MEMORIES)
    async def delete_memories(self, *, user_id: uuid.UUID | str | None = None, agent_id: str | None = None) -> int:
        """Delete every memory of a user, of an agent, or of that user with that agent; returns how many.

        Raises:
            InvalidInput: neither ``user_id`` nor ``agent_id`` is given.
        """
        data = await self._json(ep.DELETE_MEMORIES, params={"user_id": user_id, "agent_id": agent_id})
        return int(data["deleted"])

    @calls(ep.GET_KNOWLEDGE_CHUNKS)
    async def get_knowledge_chunks(self, source: str, external_ids: Sequence[str]) -> list[KnowledgeChunk]:
        """The chunks of ``source`` with these external ids (missing ones left out), by external id."""
        params = {"source": source, "external_id": list(external_ids)}
        return decode_list(KnowledgeChunk, await self._json(ep.GET_KNOWLEDGE_CHUNKS, params=params))

    @calls(ep.DELETE_KNOWLEDGE_CHUNKS)
    async def delete_knowledge_chunks(self, source: str, external_ids: Sequence[str]) -> int:
        """Delete the chunks of ``source`` with these external ids; returns how many were deleted."""
        params = {"source": source, "external_id": list(external_ids)}
        return int((await self._json(ep.DELETE_KNOWLEDGE_CHUNKS, params=params))["deleted"])

    # -- the key's own tenant ----------------------------------------------------------------------------------

    @calls(ep.GET_OWN_TENANT)
    async def get_own_tenant(self) -> Tenant:
        """The tenant of this API key: name, plan, quotas, status and config (``TenantStore.resolve``)."""
        return decode(Tenant, await self._json(ep.GET_OWN_TENANT))

    @calls(ep.INDEXING_STATUS)
    async def indexing_status(self) -> IndexingStatus:
        """The tenant's indexing jobs by state: semantic search sees an item once its job is done."""
        return decode(IndexingStatus, await self._json(ep.INDEXING_STATUS))

    @calls(ep.EXPORT)
    async def export(self, path: str | os.PathLike[str], *, user_id: uuid.UUID | str | None = None) -> Path:
        """Download an archive of the tenant's data, or of one user's, to ``path`` (a ``.tar.gz`` backup
        archive, restorable with ``mnemostore restore``); returns the path written.

        Raises:
            UserNotFound: ``user_id`` is not a user of this tenant.
        """
        response = await self._send(ep.EXPORT, params={"user_id": user_id})
        return _write(path, response.content)


def _write(path: str | os.PathLike[str], content: bytes) -> Path:
    target = Path(path).expanduser()
    target.write_bytes(content)
    return target
