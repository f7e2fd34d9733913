"""``MnemostoreVectorStore`` beyond the standard suites, on SQLite and PostgreSQL with pgvector (``vector_url``):
sources kept apart, metadata filters, search modes, relevance scores, the embeddings adapters both ways (and with
the real all-MiniLM-L6-v2 model), ``from_url`` / ``from_texts``, and the errors a caller can cause.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from mnemostore import (
    AsyncMnemoStore,
    ConfigurationError,
    EmbedderNotConfigured,
    EmbedderUnavailable,
    EmbeddingDimensionMismatch,
    InvalidInput,
    InvalidMetadata,
    MnemoStore,
    Settings,
    TenantStore,
)
from mnemostore.integrations.langchain import (
    LangChainEmbedder,
    MnemostoreEmbeddings,
    MnemostoreRetriever,
    MnemostoreVectorStore,
)
from mnemostore.search import Embedder, HashingEmbedder

FAKE = DeterministicFakeEmbedding(size=8)


@pytest.fixture(scope="module")
def fake_store(vector_url: str) -> Iterator[MnemoStore]:
    store = MnemoStore(vector_url, embedder=LangChainEmbedder(FAKE))
    yield store
    store.close()


@pytest.fixture
def fake_tenant(fake_store: MnemoStore) -> Iterator[TenantStore]:
    created = fake_store.create_tenant(f"lcv-{uuid.uuid4().hex[:12]}")
    yield fake_store.tenant(created.id)
    fake_store.delete_tenant(created.id)


def _docs(*texts: str, **metadata: object) -> list[Document]:
    return [Document(page_content=text, metadata=dict(metadata)) for text in texts]


def test_documents_are_knowledge_chunks_of_the_source(fake_tenant: TenantStore) -> None:
    store = MnemostoreVectorStore(fake_tenant, source="handbook")
    ids = store.add_documents([Document(page_content="travel policy", metadata={"page": 3}, id="p3")])
    assert ids == ["p3"]
    [chunk] = fake_tenant.list_knowledge("handbook").items
    assert (chunk.external_id, chunk.content, chunk.metadata) == ("p3", "travel policy", {"page": 3})
    fake_tenant.upsert_knowledge("handbook", "p4", "written through the store API", metadata={"page": 4})
    assert store.get_by_ids(["p4", "p3"]) == [
        Document(id="p4", page_content="written through the store API", metadata={"page": 4}),
        Document(id="p3", page_content="travel policy", metadata={"page": 3}),
    ]


def test_two_sources_of_one_tenant_do_not_see_each_other(fake_tenant: TenantStore) -> None:
    a = MnemostoreVectorStore(fake_tenant, source="a")
    b = MnemostoreVectorStore(fake_tenant, source="b")
    a.add_texts(["same text", "only in a"], ids=["1", "2"])
    b.add_texts(["same text"], ids=["1"])
    assert [d.page_content for d in a.similarity_search("same text", k=10)] == ["same text", "only in a"]
    assert [(d.id, d.page_content) for d in b.similarity_search("same text", k=10)] == [("1", "same text")]
    assert b.get_by_ids(["1", "2"]) == [Document(id="1", page_content="same text")]
    b.delete(["2"])  # a's "2" is not b's
    assert [d.id for d in a.get_by_ids(["1", "2"])] == ["1", "2"]
    assert a.delete() is True  # ids=None: every document of the source
    assert a.similarity_search("same text", k=10) == []
    assert [d.id for d in b.similarity_search("same text", k=10)] == ["1"]


def test_metadata_filter_and_modes(fake_tenant: TenantStore) -> None:
    store = MnemostoreVectorStore(fake_tenant)
    store.add_documents(_docs("red apple", "green apple", lang="en") + _docs("pomme rouge", lang="fr"), ids=None)
    assert [d.page_content for d in store.similarity_search("red apple", k=5, filter={"lang": "fr"})] == ["pomme rouge"]
    assert store.similarity_search("red apple", k=5, filter={"lang": "de"}) == []
    words = store.similarity_search("apple", k=5, mode="fulltext")
    assert sorted(d.page_content for d in words) == ["green apple", "red apple"]
    hybrid = store.similarity_search("red apple", k=1, mode="hybrid")
    assert [d.page_content for d in hybrid] == ["red apple"]
    with pytest.raises(InvalidInput, match="metadata filter"):
        store.similarity_search("apple", filter={"lang": {"$in": ["en", "fr"]}})


def test_scores_and_relevance(fake_tenant: TenantStore) -> None:
    store = MnemostoreVectorStore(fake_tenant)
    store.add_texts(["alpha", "beta", "gamma"])
    scored = store.similarity_search_with_score("beta", k=3)
    assert scored[0][0].page_content == "beta" and scored[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    relevant = store.similarity_search_with_relevance_scores("beta", k=3)
    assert all(0.0 <= score <= 1.0 for _, score in relevant)
    assert [d.page_content for d, _ in store.similarity_search_with_relevance_scores("beta", score_threshold=0.99)] == [
        "beta"
    ]


def test_the_retriever(fake_tenant: TenantStore) -> None:
    store = MnemostoreVectorStore(fake_tenant)
    store.add_documents(_docs("one", "two", "three", kind="n") + _docs("four", kind="m"))
    retriever = store.as_retriever(k=2)
    assert isinstance(retriever, MnemostoreRetriever)
    assert len(retriever.invoke("one")) == 2
    assert retriever.invoke("one")[0].page_content == "one"
    assert [d.page_content for d in store.as_retriever(filter={"kind": "m"}).invoke("one")] == ["four"]
    assert len(store.as_retriever(search_kwargs={"k": 3}).invoke("one")) == 3
    assert len(store.as_retriever(k=1).invoke("one", k=3)) == 3
    threshold = store.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99})
    assert [d.page_content for d in threshold.invoke("two")] == ["two"]
    with pytest.raises(ValueError, match="search_type"):
        store.as_retriever(search_type="mmr")


def test_adding_without_waiting_is_still_read_your_writes(fake_tenant: TenantStore) -> None:
    store = MnemostoreVectorStore(fake_tenant, wait_for_indexing=False)
    store.add_texts(["fresh"], ids=["f"])
    assert fake_tenant.indexing_status().pending == 1  # nothing embedded yet
    assert [d.id for d in store.similarity_search("fresh", k=1)] == ["f"]  # the search embeds its few pending


def test_bad_arguments(fake_tenant: TenantStore) -> None:
    store = MnemostoreVectorStore(fake_tenant)
    with pytest.raises(InvalidInput, match="unknown argument"):
        store.similarity_search("x", where={"a": 1})
    with pytest.raises(InvalidInput, match="unknown argument"):
        store.add_texts(["x"], namespace="n")
    with pytest.raises(InvalidInput, match="2 ids for 1 documents"):
        store.add_texts(["x"], ids=["a", "b"])
    with pytest.raises(InvalidInput, match="metadatas"):
        store.add_texts(["x", "y"], metadatas=[{}])
    with pytest.raises(InvalidInput, match="list of strings"):
        store.get_by_ids("abc")
    with pytest.raises(InvalidMetadata):
        store.add_documents([Document(page_content="x", metadata={"when": object()})])
    with pytest.raises(InvalidInput, match="source"):
        MnemostoreVectorStore(fake_tenant, source="")
    with pytest.raises(InvalidInput, match="tenant view"):
        MnemostoreVectorStore("acme")  # type: ignore[arg-type]


# -- on an async tenant ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def fake_astore(vector_url: str) -> AsyncIterator[AsyncMnemoStore]:
    store = AsyncMnemoStore(vector_url, embedder=LangChainEmbedder(FAKE))
    yield store
    await store.close()


async def test_an_async_tenants_vector_store_and_retriever(fake_astore: AsyncMnemoStore) -> None:
    created = await fake_astore.create_tenant(f"lcv-{uuid.uuid4().hex[:12]}")
    store = MnemostoreVectorStore(fake_astore.tenant(created.id))
    try:
        await store.aadd_texts(["north", "south", "east"], ids=["n", "s", "e"])
        found = await store.as_retriever(k=2).ainvoke("south")
        assert len(found) == 2 and found[0].id == "s"
        assert await store.aget_by_ids(["e"]) == [Document(id="e", page_content="east")]
        await store.adelete(["e"])
        assert await store.aget_by_ids(["e"]) == []
        with pytest.raises(ConfigurationError, match="async methods"):
            store.similarity_search("south")
        with pytest.raises(ConfigurationError):
            store.add_texts(["west"])
    finally:
        await fake_astore.delete_tenant(created.id)


# -- embeddings ----------------------------------------------------------------------------------------------------


class Broken(Embeddings):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("the embeddings service is down")

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("the embeddings service is down")


class Named(DeterministicFakeEmbedding):
    model: str = "text-embedding-test"


class Asymmetric(DeterministicFakeEmbedding):
    """Queries and documents embedded differently, as e5-style models do: a query "q: x" is the document "x"."""

    def embed_query(self, text: str) -> list[float]:
        return super().embed_query(text.removeprefix("q: "))


def test_the_embedder_adapter() -> None:
    embedder = LangChainEmbedder(FAKE)
    assert (embedder.name, embedder.dimension) == ("langchain:DeterministicFakeEmbedding:8", 8)
    assert LangChainEmbedder(Named(size=4)).name == "langchain:Named:text-embedding-test:4"
    assert LangChainEmbedder(FAKE, name="mine", dimension=8).name == "mine"
    [vector] = embedder.embed(["hello"])
    assert sum(x * x for x in vector) == pytest.approx(1.0)
    assert embedder.embed_query("hello") == pytest.approx(vector)
    with pytest.raises(EmbedderUnavailable, match="service is down"):
        LangChainEmbedder(Broken())
    broken = LangChainEmbedder(Broken(), dimension=3)
    with pytest.raises(EmbedderUnavailable, match="Broken failed"):
        broken.embed(["x"])
    with pytest.raises(EmbeddingDimensionMismatch):
        LangChainEmbedder(FAKE, dimension=5).embed_query("x")
    with pytest.raises(ConfigurationError, match="Embeddings object"):
        LangChainEmbedder("openai")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="dimension"):
        LangChainEmbedder(FAKE, dimension=0)


def test_queries_go_through_embed_query(vector_url: str) -> None:
    with MnemoStore(vector_url, embedder=LangChainEmbedder(Asymmetric(size=8))) as mstore:
        created = mstore.create_tenant(f"lcv-{uuid.uuid4().hex[:12]}")
        store = MnemostoreVectorStore(mstore.tenant(created.id))
        store.add_texts(["cat", "dog", "bird"])
        scored = store.similarity_search_with_score("q: dog", k=1)
        assert scored[0][0].page_content == "dog" and scored[0][1] == pytest.approx(1.0, abs=1e-5)
        mstore.delete_tenant(created.id)


def test_the_embeddings_property(fake_tenant: TenantStore, vector_url: str) -> None:
    assert MnemostoreVectorStore(fake_tenant).embeddings is FAKE
    with MnemoStore(vector_url) as own:  # the tests' default embedder (hashing), a mnemostore Embedder
        created = own.create_tenant(f"lcv-{uuid.uuid4().hex[:12]}")
        embeddings = MnemostoreVectorStore(own.tenant(created.id)).embeddings
        assert isinstance(embeddings, MnemostoreEmbeddings)
        assert embeddings.embed_query("words") == own.embedder.embed(["words"])[0]  # type: ignore[union-attr]
        own.delete_tenant(created.id)


def test_without_an_embedder_semantic_search_says_so_and_full_text_works(vector_url: str) -> None:
    with MnemoStore(settings=Settings(database_url=vector_url, embedder="none")) as plain:
        created = plain.create_tenant(f"lcv-{uuid.uuid4().hex[:12]}")
        store = MnemostoreVectorStore(plain.tenant(created.id))
        assert store.embeddings is None
        store.add_texts(["nothing to embed"], ids=["1"])
        with pytest.raises(EmbedderNotConfigured):
            store.similarity_search("embed")
        assert [d.id for d in store.similarity_search("embed", mode="fulltext")] == ["1"]
        plain.delete_tenant(created.id)


def test_with_the_stores_own_model(vector_url: str, minilm: Embedder) -> None:
    """The default path: no LangChain embeddings at all, the store's all-MiniLM-L6-v2 finds a paraphrase."""
    with MnemoStore(vector_url, embedder=minilm) as mstore:
        created = mstore.create_tenant(f"lcv-{uuid.uuid4().hex[:12]}")
        store = MnemostoreVectorStore(mstore.tenant(created.id))
        store.add_texts(
            [
                "Employees may book hotels up to 180 EUR per night.",
                "The office closes at 6 pm on Fridays.",
                "Lunch is served in the cafeteria from noon.",
            ]
        )
        [best] = store.similarity_search("how much can I spend on accommodation?", k=1)
        assert best.page_content.startswith("Employees may book hotels")
        mstore.delete_tenant(created.id)


# -- from_url and from_texts -------------------------------------------------------------------------------------


def test_from_texts_and_from_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vectors.db'}"
    with MnemostoreVectorStore.from_texts(
        ["kept across opens", "another"], FAKE, metadatas=[{"n": 1}, {"n": 2}], ids=["a", "b"], database_url=url
    ) as store:
        assert store.embeddings is FAKE
    with MnemostoreVectorStore.from_url(url, embedding=FAKE) as store:
        assert store.similarity_search("kept across opens", k=1) == [
            Document(id="a", page_content="kept across opens", metadata={"n": 1})
        ]
    with MnemostoreVectorStore.from_url(url, embedding=FAKE, tenant="another-tenant") as store:
        assert store.get_by_ids(["a"]) == []
    with pytest.raises(InvalidInput, match="not both"):
        MnemostoreVectorStore.from_url(url, embedding=FAKE, embedder=HashingEmbedder(8))
