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
from mnemostore.search import HashingEmbedder


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


class TestCallerEmbeddings(VectorStoreIntegrationTests):
    """The vector store embeds with the caller's ``Embeddings`` itself (the store's embedder is another model):
    documents are stored with their vectors and searched by the query's vector."""

    @pytest.fixture
    def vectorstore(self, vector_url: str) -> Iterator[MnemostoreVectorStore]:  # type: ignore[override]
        with MnemoStore(vector_url, embedder=HashingEmbedder(384)) as store:
            created = store.create_tenant(f"lc-{uuid.uuid4().hex[:12]}")
            try:
                yield MnemostoreVectorStore(store.tenant(created.id), embedding=self.get_embeddings())
            finally:
                store.delete_tenant(created.id)


class TestCallerEmbeddingsAsync(VectorStoreIntegrationTests):
    @property
    def has_sync(self) -> bool:
        return False

    @pytest.fixture
    async def vectorstore(self, vector_url: str) -> AsyncIterator[MnemostoreVectorStore]:  # type: ignore[override]
        async with AsyncMnemoStore(vector_url, embedder=HashingEmbedder(384)) as store:
            created = await store.create_tenant(f"lc-{uuid.uuid4().hex[:12]}")
            try:
                yield MnemostoreVectorStore(store.tenant(created.id), embedding=self.get_embeddings())
            finally:
                await store.delete_tenant(created.id)


def test_caller_embeddings_are_stored_and_searched_by_vector(lc_store: MnemoStore) -> None:
    embeddings = VectorStoreIntegrationTests.get_embeddings()
    created = lc_store.create_tenant(f"lc-{uuid.uuid4().hex[:12]}")
    try:
        tenant = lc_store.tenant(created.id)
        vectorstore = MnemostoreVectorStore(tenant, embedding=embeddings, embedding_model="fake-6")
        vectorstore.add_texts(["foo", "bar"], ids=["1", "2"])
        # Nothing queued for the store's embedder: the vectors came with the documents.
        assert tenant.indexing_status().pending == 0
        found = vectorstore.similarity_search_by_vector(embeddings.embed_query("bar"), k=1)
        assert [d.id for d in found] == ["2"]
        hits = tenant.search(vector=embeddings.embed_query("foo"), model="fake-6", kinds=["knowledge"], limit=1)
        assert hits[0].external_id == "1"
        assert vectorstore.embeddings is embeddings
    finally:
        lc_store.delete_tenant(created.id)
