"""Repositories and the unit of work that carries them (async; ``_repositories.py`` is generated from this).

A repository turns one access path into SQL and rows into domain objects; it never commits. Every statement it
builds names ``tenant_id`` explicitly: on SQLite that is the isolation, on PostgreSQL it is the index prefix and
row-level security is the guard behind it.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from mnemostore.store._accounts_async import AsyncApiKeyRepository, AsyncTenantRepository, AsyncUserRepository
from mnemostore.store._agent_async import AsyncAgentRepository, AsyncMaintenanceRepository, ResealBatch
from mnemostore.store._conversations_async import AsyncConversationRepository, AsyncMessageRepository
from mnemostore.store._crypto import FieldCodec
from mnemostore.store._graph_items_async import AsyncGraphItemRepository
from mnemostore.store._graphs_async import AsyncGraphRepository
from mnemostore.store._memories_async import AsyncKnowledgeRepository, AsyncMemoryRepository
from mnemostore.store._search_async import (
    AsyncIndexRepository,
    AsyncSearchRepository,
    ensure_pg_vectors,
    vector_column_is_vector,
)

__all__ = ["AsyncUnitOfWork", "ResealBatch"]


class AsyncUnitOfWork:
    """One transaction in one tenant scope, with a repository per aggregate.

    Created by ``AsyncDatabase.transaction``, which commits or rolls back. It hands out every repository (the
    search ones too: ``index_jobs``, ``search``) and the schema probes of vector search, so services need not see
    a connection. ``connection`` stays for the callers that still build repositories from it.
    """

    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID | None, *, dialect: str, codec: FieldCodec) -> None:
        self.connection = conn
        self.tenant_id = tenant_id
        self.dialect = dialect
        self.codec = codec
        self.tenants = AsyncTenantRepository(conn, tenant_id, codec=codec)
        self.api_keys = AsyncApiKeyRepository(conn, tenant_id, codec=codec)
        self.users = AsyncUserRepository(conn, tenant_id, codec=codec)
        self.conversations = AsyncConversationRepository(conn, tenant_id, codec=codec)
        self.messages = AsyncMessageRepository(conn, tenant_id, codec=codec)
        self.knowledge = AsyncKnowledgeRepository(conn, tenant_id, codec=codec)
        self.memories = AsyncMemoryRepository(conn, tenant_id, codec=codec)
        self.agent = AsyncAgentRepository(conn, tenant_id, codec=codec)
        self.maintenance = AsyncMaintenanceRepository(conn, tenant_id, codec=codec)

    # The search and graph repositories are built on first use: most transactions need none of them.

    @property
    def graphs(self) -> AsyncGraphRepository:
        """Graph state (checkpoints, channel values, pending writes) of this unit of work's tenant."""
        return AsyncGraphRepository(self.connection, self.tenant_id, dialect=self.dialect, codec=self.codec)

    @property
    def graph_items(self) -> AsyncGraphItemRepository:
        """Graph items (namespaced JSON documents with a time to live) of this unit of work's tenant."""
        return AsyncGraphItemRepository(self.connection, self.tenant_id, dialect=self.dialect, codec=self.codec)

    @property
    def index_jobs(self) -> AsyncIndexRepository:
        """The indexing outbox, in this unit of work's scope (the admin scope sees every tenant's jobs)."""
        return AsyncIndexRepository(self.connection, self.tenant_id, dialect=self.dialect)

    @property
    def search(self) -> AsyncSearchRepository:
        """The search queries of this unit of work's tenant (searching needs a tenant scope)."""
        if self.tenant_id is None:
            raise ValueError("search runs in one tenant's scope, not in the admin scope")
        return AsyncSearchRepository(self.connection, self.tenant_id, dialect=self.dialect, codec=self.codec)

    async def vector_column_is_vector(self) -> bool:
        """Whether ``embeddings.vector`` holds vectors: always on SQLite; on PostgreSQL when it is pgvector's."""
        return await vector_column_is_vector(self.connection, self.dialect)

    async def ensure_pg_vectors(self, dimension: int) -> None:
        """PostgreSQL: make ``embeddings.vector`` pgvector's type and the HNSW index of ``dimension`` exist."""
        await ensure_pg_vectors(self.connection, dimension)
