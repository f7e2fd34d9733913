"""``MnemostoreVectorStore`` and ``MnemostoreRetriever`` against LangChain's standard suites (``langchain-tests``),
on SQLite (the embedded vector index) and on PostgreSQL with pgvector (``vector_url``).

The suites hand the store a deterministic fake ``Embeddings`` object (6 dimensions); it reaches mnemostore as the
store's embedder through ``LangChainEmbedder``, so every vector is made and searched by mnemostore's own indexer
and index. ``TestSyncTenant`` builds the vector store on a ``TenantStore`` (the async tests then run it on worker
threads); ``TestAsyncTenant`` on an ``AsyncTenantStore``, whose vector store has async methods only (the suite's
sync tests skip themselves: ``has_sync`` is False).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from mnemostore import AsyncMnemoStore, MnemoStore
from mnemostore.integrations.langchain import (
    LangChainEmbedder,
    MnemostoreRetriever,
    MnemostoreVectorStore,
)


@pytest.fixture(scope="module")
def lc_store(vector_url: str) -> Iterator[MnemoStore]:
    """A store that embeds with the suites' fake embeddings."""
    store = MnemoStore(vector_url, embedder=LangChainEmbedder(VectorStoreIntegrationTests.get_embeddings()))
    yield store
    store.close()


@pytest.fixture(scope="module")
async def lc_astore(vector_url: str) -> AsyncIterator[AsyncMnemoStore]:
    store = AsyncMnemoStore(vector_url, embedder=LangChainEmbedder(VectorStoreIntegrationTests.get_embeddings()))
    yield store
    await store.close()


class TestSyncTenant(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, lc_store: MnemoStore) -> Iterator[MnemostoreVectorStore]:  # type: ignore[override]
        created = lc_store.create_tenant(f"lc-{uuid.uuid4().hex[:12]}")
        try:
            yield MnemostoreVectorStore(lc_store.tenant(created.id))
        finally:
            lc_store.delete_tenant(created.id)


class TestAsyncTenant(VectorStoreIntegrationTests):
    @property
    def has_sync(self) -> bool:
        return False

    @pytest.fixture
    async def vectorstore(self, lc_astore: AsyncMnemoStore) -> AsyncIterator[MnemostoreVectorStore]:  # type: ignore[override]
        created = await lc_astore.create_tenant(f"lc-{uuid.uuid4().hex[:12]}")
        try:
            yield MnemostoreVectorStore(lc_astore.tenant(created.id))
        finally:
            await lc_astore.delete_tenant(created.id)


class TestRetriever(RetrieversIntegrationTests):
    """The suite builds retrievers from ``retriever_constructor_params``: the vector store of a fresh tenant that
    holds five documents (set up before each test)."""

    @pytest.fixture(autouse=True)
    def _documents(self, lc_store: MnemoStore) -> Iterator[None]:
        created = lc_store.create_tenant(f"lc-{uuid.uuid4().hex[:12]}")
        self._vectorstore = MnemostoreVectorStore(lc_store.tenant(created.id))
        self._vectorstore.add_documents([Document(page_content=text) for text in ("foo", "bar", "baz", "qux", "quux")])
        try:
            yield
        finally:
            lc_store.delete_tenant(created.id)

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return MnemostoreRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"vectorstore": self._vectorstore}

    @property
    def retriever_query_example(self) -> str:
        return "foo"
