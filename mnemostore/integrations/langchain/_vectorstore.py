"""``MnemostoreVectorStore`` (a LangChain vector store over one source of knowledge chunks) and its retriever."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever

from mnemostore.errors import ConfigurationError, InvalidInput
from mnemostore.integrations.langchain._chunks import Chunks
from mnemostore.integrations.langchain._chunks_async import AsyncChunks
from mnemostore.integrations.langchain._embeddings import LangChainEmbedder, MnemostoreEmbeddings
from mnemostore.integrations.langchain._setup import DEFAULT_TENANT, open_tenant
from mnemostore.search import SearchMode
from mnemostore.service.store import MnemoStore, TenantStore
from mnemostore.service.store_async import AsyncMnemoStore, AsyncTenantStore

__all__ = ["DEFAULT_SOURCE", "MnemostoreRetriever", "MnemostoreVectorStore"]

# The knowledge source a vector store keeps its documents in, unless told otherwise.
DEFAULT_SOURCE = "langchain"
# What the search methods take besides the query and k.
_SEARCH_ARGUMENTS = ("filter", "mode")


class MnemostoreVectorStore(VectorStore):
    """A LangChain vector store whose documents are the knowledge chunks of one ``source`` of a tenant.

    A document's id is its chunk's external id (given, the document's own, or a new UUID), its text the chunk's
    content, its metadata the chunk's metadata. Adding upserts (one transaction; the same id replaces the
    document), and by default waits until the new documents are searchable by meaning. Search is mnemostore's own
    (``mode="semantic"`` by default: cosine similarity through the store's vector index; ``"hybrid"``,
    ``"fulltext"`` and ``"auto"`` too), scoped to the source; ``filter`` keeps documents whose metadata has
    these top-level keys equal to these values.

    The vectors are the store's, made by the embedder the store was opened with, unless ``embedding`` is given:
    then this vector store embeds with that LangChain ``Embeddings`` object itself, stores each document with its
    vector (under ``embedding_model``, default ``langchain:<class>[:<model>]:<dimension>``; the store never
    re-embeds them) and searches by the query's vector, so a tenant may embed this source with its own model and
    other kinds with the store's. To make a LangChain object the store's embedder for everything instead, open the
    store with it (``MnemoStore(url, embedder=LangChainEmbedder(embeddings))``, or
    ``MnemostoreVectorStore.from_url(url, embedding=embeddings)``). ``embeddings`` gives the embeddings in use.

    Built on a ``TenantStore``, every method works (the async ones run it on a worker thread); built on an
    ``AsyncTenantStore``, the async ones do, and the sync ones raise ``ConfigurationError``.

    Args:
        source: the knowledge source that holds the documents (another source of the tenant is not seen).
        wait_for_indexing: adding returns once search finds the new documents by meaning (the store embeds
            them, or waits for its indexer); off: adding returns after the write, and semantic search finds them
            once they are embedded (the store's read-your-writes covers small backlogs).
        timeout_seconds: how long adding waits for the indexing at most (``IndexingTimeout`` after it).
        embedding: embed documents and queries with this ``Embeddings`` object (see above).
        embedding_model: the name the vectors of ``embedding`` are stored and searched under.
    """

    def __init__(
        self,
        tenant: TenantStore | AsyncTenantStore,
        *,
        source: str = DEFAULT_SOURCE,
        wait_for_indexing: bool = True,
        timeout_seconds: float = 60.0,
        embedding: Embeddings | None = None,
        embedding_model: str | None = None,
    ) -> None:
        self._sync: Chunks | None = None
        self._async: AsyncChunks | None = None
        options: dict[str, Any] = {
            "wait_for_indexing": wait_for_indexing,
            "timeout_seconds": timeout_seconds,
            "embedding": embedding,
            "model": embedding_model,
        }
        if isinstance(tenant, AsyncTenantStore):
            self._async = AsyncChunks(tenant, source, **options)
            self._store: AsyncMnemoStore | MnemoStore = tenant.store
        elif isinstance(tenant, TenantStore):
            self._sync = Chunks(tenant, source, **options)
            self._store = tenant.store
        else:
            raise InvalidInput(
                f"a vector store is built on a tenant view (store.tenant(...)), got {type(tenant).__name__}"
            )
        self.source = source
        self._embedding = embedding
        self._owned: MnemoStore | None = None

    # -- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        database_url: str | None = None,
        *,
        embedding: Embeddings | None = None,
        tenant: uuid.UUID | str = DEFAULT_TENANT,
        source: str = DEFAULT_SOURCE,
        wait_for_indexing: bool = True,
        **settings: Any,
    ) -> Self:
        """A vector store on the database at ``database_url`` (None: ``MNEMOSTORE_DATABASE_URL``, else
        ``./mnemostore.db``), in ``tenant`` (a name, created when missing, or an id); a new database gets the
        schema. ``embedding``: embed with this LangChain object (default: the store's configured embedder). The
        vector store owns the store it opens: ``close()`` it (or use it in a ``with`` block).

        Args:
            settings: any other setting of ``MnemoStore`` (``redis_url=``, ``embedder=``, …).
        """
        if embedding is not None:
            if "embedder" in settings:
                raise InvalidInput("pass either embedding (a LangChain object) or embedder, not both")
            settings["embedder"] = LangChainEmbedder(embedding)
        store, view = open_tenant(database_url, tenant, **settings)
        try:
            vectorstore = cls(view, source=source, wait_for_indexing=wait_for_indexing)
        except BaseException:
            store.close()
            raise
        vectorstore._owned = store
        return vectorstore

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        database_url: str | None = None,
        tenant: uuid.UUID | str = DEFAULT_TENANT,
        source: str = DEFAULT_SOURCE,
        **settings: Any,
    ) -> Self:
        """``from_url(database_url, embedding=embedding, …)`` with the texts added (see ``from_url``)."""
        vectorstore = cls.from_url(database_url, embedding=embedding, tenant=tenant, source=source, **settings)
        try:
            vectorstore.add_texts(texts, metadatas, ids=ids)
        except BaseException:
            vectorstore.close()
            raise
        return vectorstore

    def close(self) -> None:
        """Close the store that ``from_url`` opened (a tenant view given to the constructor stays open)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def embeddings(self) -> Embeddings | None:
        """The ``embedding`` given to this vector store, else the store's embedder as a LangChain object (the one
        it was given, for a ``LangChainEmbedder``); None when there is none (full-text search only)."""
        if self._embedding is not None:
            return self._embedding
        embedder = self._store.embedder
        if isinstance(embedder, LangChainEmbedder):
            return embedder.embeddings
        return MnemostoreEmbeddings(embedder) if embedder is not None else None

    # -- writes ------------------------------------------------------------------------------------------------

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert the documents under ``ids=`` (else each document's id, else a new UUID); returns the ids."""
        return self._chunks().add(documents, _ids(kwargs))

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert the documents under ``ids=`` (else each document's id, else a new UUID); returns the ids."""
        if self._async is not None:
            return await self._async.add(documents, _ids(kwargs))
        return await run_in_executor(None, self.add_documents, documents, **kwargs)

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upsert one document per text (with its metadata and id, when given); returns the ids."""
        return self.add_documents(_documents(texts, metadatas), ids=ids, **kwargs)

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upsert one document per text (with its metadata and id, when given); returns the ids."""
        return await self.aadd_documents(_documents(texts, metadatas), ids=ids, **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the documents with these ids (an unknown id is skipped), or every document of the source when
        ``ids`` is None. Returns True."""
        _no_arguments(kwargs, "delete")
        self._chunks().delete(ids)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the documents with these ids (an unknown id is skipped), or every document of the source when
        ``ids`` is None. Returns True."""
        _no_arguments(kwargs, "delete")
        if self._async is None:
            return await run_in_executor(None, self.delete, ids)
        await self._async.delete(ids)
        return True

    # -- reads -------------------------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order asked; an id with no document is left out."""
        return self._chunks().get(ids)

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order asked; an id with no document is left out."""
        if self._async is None:
            return await run_in_executor(None, self.get_by_ids, ids)
        return await self._async.get(ids)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents closest to ``query``, best first (``filter=``, ``mode=``: see the class)."""
        return [document for document, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents closest to ``query``, best first (``filter=``, ``mode=``: see the class)."""
        return [document for document, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        """The ``k`` documents closest to ``query`` with their scores, best first: the cosine similarity in
        semantic mode (higher is closer), mnemostore's score of the mode otherwise."""
        filter, mode = _search_arguments(kwargs)
        return self._chunks().search(query, k=k, filter=filter, mode=mode)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents closest to ``query`` with their scores, best first (see
        ``similarity_search_with_score``)."""
        if self._async is None:
            return await run_in_executor(None, self.similarity_search_with_score, query, k, **kwargs)
        filter, mode = _search_arguments(kwargs)
        return await self._async.search(query, k=k, filter=filter, mode=mode)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents nearest to ``embedding`` (a vector of this store's ``embedding``, or of the
        store's embedder), best first (``filter=``)."""
        filter, _ = _search_arguments(kwargs)
        return [document for document, _ in self._chunks().search_by_vector(embedding, k=k, filter=filter)]

    async def asimilarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents nearest to ``embedding``, best first (see ``similarity_search_by_vector``)."""
        if self._async is None:
            return await run_in_executor(None, self.similarity_search_by_vector, embedding, k, **kwargs)
        filter, _ = _search_arguments(kwargs)
        return [document for document, _ in await self._async.search_by_vector(embedding, k=k, filter=filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Relevance from the semantic score: the cosine similarity, negative ones counted as 0."""
        return _relevance

    def as_retriever(self, **kwargs: Any) -> MnemostoreRetriever:
        """A retriever over this store: ``k=``, ``filter=``, ``mode=``, or LangChain's ``search_type=`` and
        ``search_kwargs=``."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return MnemostoreRetriever(vectorstore=self, tags=tags, **kwargs)

    def _chunks(self) -> Chunks:
        if self._sync is None:
            raise ConfigurationError(
                "this vector store is built on an AsyncTenantStore: use its async methods (aadd_documents, "
                "asimilarity_search, aget_by_ids, adelete, …) or build it on a TenantStore "
                "(MnemoStore(...).tenant(...))"
            )
        return self._sync


class MnemostoreRetriever(VectorStoreRetriever):
    """Documents of a ``MnemostoreVectorStore`` for a query: the ``k`` best by ``mode`` (semantic by default),
    among those whose metadata matches ``filter``. ``invoke(query, k=…, filter=…, mode=…)`` overrides them for
    one call; ``search_kwargs`` holds defaults as in any LangChain vector store retriever."""

    vectorstore: MnemostoreVectorStore
    k: int = 4
    filter: dict[str, Any] | None = None
    mode: str = SearchMode.SEMANTIC.value

    allowed_search_types: ClassVar[Collection[str]] = ("similarity", "similarity_score_threshold")

    def _arguments(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        arguments: dict[str, Any] = {"k": self.k, "mode": self.mode}
        if self.filter is not None:
            arguments["filter"] = self.filter
        return arguments | self.search_kwargs | dict(kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        arguments = self._arguments(kwargs)
        if self.search_type == "similarity_score_threshold":
            found = self.vectorstore.similarity_search_with_relevance_scores(query, **arguments)
            return [document for document, _ in found]
        return self.vectorstore.similarity_search(query, **arguments)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        arguments = self._arguments(kwargs)
        if self.search_type == "similarity_score_threshold":
            found = await self.vectorstore.asimilarity_search_with_relevance_scores(query, **arguments)
            return [document for document, _ in found]
        return await self.vectorstore.asimilarity_search(query, **arguments)


def _relevance(score: float) -> float:
    return min(1.0, max(0.0, score))


def _ids(kwargs: Mapping[str, Any]) -> list[str | None] | None:
    _no_arguments({key: value for key, value in kwargs.items() if key != "ids"}, "add")
    ids = kwargs.get("ids")
    if ids is None:
        return None
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise InvalidInput(f"ids must be a list of strings, got {type(ids).__name__}")
    return list(ids)


def _documents(texts: Iterable[str], metadatas: list[dict[str, Any]] | None) -> list[Document]:
    texts = list(texts)
    if metadatas is not None and len(metadatas) != len(texts):
        raise InvalidInput(f"{len(metadatas)} metadatas for {len(texts)} texts: give one per text")
    return [Document(page_content=text, metadata=metadatas[i] if metadatas else {}) for i, text in enumerate(texts)]


def _search_arguments(kwargs: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, SearchMode | str]:
    _no_arguments({key: value for key, value in kwargs.items() if key not in _SEARCH_ARGUMENTS}, "search")
    return kwargs.get("filter"), kwargs.get("mode", SearchMode.SEMANTIC)


def _no_arguments(kwargs: Mapping[str, Any], what: str) -> None:
    if kwargs:
        raise InvalidInput(f"unknown argument(s) of {what}: {', '.join(sorted(kwargs))}")
