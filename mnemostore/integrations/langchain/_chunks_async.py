"""One source of a tenant's knowledge chunks as LangChain documents (async; the vector store calls it from its async
methods).

A document is a chunk of the source: its id is the chunk's external id, its text the content, its metadata the
chunk's metadata. Writes are ``upsert_knowledge_chunks`` (one transaction; unchanged documents write nothing),
reads and deletes go by external id, and search is the store's own search over this source's chunks. The
vectors are made by the store's embedder, or, given a LangChain ``Embeddings`` (``embedding``), by it: the chunks
are then stored with their vectors (``vector=``, under ``model``) and searched by the query's vector.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from mnemostore.domain import KnowledgeChunk
from mnemostore.errors import InvalidInput
from mnemostore.integrations.langchain._embeddings import default_model_name
from mnemostore.search import ItemKind, SearchMode
from mnemostore.service.store_async import AsyncTenantStore

__all__ = ["AsyncChunks"]

# Chunks deleted per transaction when a whole source is cleared.
_PAGE = 500


class AsyncChunks:
    """The documents of one knowledge source of a tenant."""

    def __init__(
        self,
        tenant: AsyncTenantStore,
        source: str,
        *,
        wait_for_indexing: bool,
        timeout_seconds: float,
        embedding: Embeddings | None = None,
        model: str | None = None,
    ) -> None:
        if not isinstance(source, str) or not source.strip():
            raise InvalidInput(f"source must be a non-empty string, got {source!r}")
        if embedding is not None and not isinstance(embedding, Embeddings):
            raise InvalidInput(f"embedding must be a LangChain Embeddings object, got {type(embedding).__name__}")
        self.tenant = tenant
        self.source = source
        self.wait_for_indexing = wait_for_indexing
        self.timeout_seconds = timeout_seconds
        self.embedding = embedding
        self.model = model

    def _model(self, vector: Sequence[float]) -> str:
        """The name the caller's vectors are stored under (given, or derived from the embeddings object)."""
        if self.model is None:
            assert self.embedding is not None
            self.model = default_model_name(self.embedding, len(vector))
        return self.model

    async def _embed_documents(self, texts: list[str]) -> list[list[float]]:
        assert self.embedding is not None
        if True:  # ASYNC
            return await self.embedding.aembed_documents(texts)
        else:
            return self.embedding.embed_documents(texts)

    async def _embed_query(self, text: str) -> list[float]:
        assert self.embedding is not None
        if True:  # ASYNC
            return await self.embedding.aembed_query(text)
        else:
            return self.embedding.embed_query(text)

    async def add(self, documents: Sequence[Document], ids: Sequence[str | None] | None) -> list[str]:
        """Upsert the documents under their ids (``ids``, else each document's own, else a new UUID); then,
        with ``wait_for_indexing``, wait until search finds them by meaning. Returns the ids, in order."""
        if ids is not None and len(ids) != len(documents):
            raise InvalidInput(f"{len(ids)} ids for {len(documents)} documents: give one id per document")
        keys = [
            (ids[i] if ids is not None else None) or document.id or str(uuid.uuid4())
            for i, document in enumerate(documents)
        ]
        chunks = [
            {"external_id": key, "content": document.page_content, "metadata": document.metadata}
            for key, document in zip(keys, documents, strict=True)
        ]
        if not chunks:
            return []
        if self.embedding is not None:
            vectors = await self._embed_documents([document.page_content for document in documents])
            for chunk, vector in zip(chunks, vectors, strict=True):
                chunk["vector"] = vector
            await self.tenant.upsert_knowledge_chunks(self.source, chunks, model=self._model(vectors[0]))
            return keys  # stored with their vectors: searchable at once
        await self.tenant.upsert_knowledge_chunks(self.source, chunks)
        if self.wait_for_indexing and self.tenant.store.embedder is not None:
            await self.tenant.wait_for_indexing(timeout_seconds=self.timeout_seconds)
        return keys

    async def get(self, ids: Sequence[str]) -> list[Document]:
        """The documents with these ids, in the order asked; an id with no document is left out."""
        return [_document(chunk) for chunk in await self.tenant.get_knowledge_chunks(self.source, ids)]

    async def delete(self, ids: Sequence[str] | None) -> int:
        """Delete the documents with these ids (missing ones are skipped), or every document of the source when
        ``ids`` is None; returns how many were deleted."""
        if ids is not None:
            return await self.tenant.delete_knowledge_chunks(self.source, ids)
        deleted = 0
        while True:
            page = await self.tenant.list_knowledge(self.source, limit=_PAGE)
            if not page.items:
                return deleted
            deleted += await self.tenant.delete_knowledge_chunks(self.source, [c.external_id for c in page.items])

    async def search(
        self, query: str, *, k: int, filter: Mapping[str, Any] | None, mode: SearchMode | str
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents that best match ``query``, best first, with their scores (semantic mode: the
        cosine similarity). With ``embedding``, semantic and hybrid search rank by the query's vector."""
        if self.embedding is not None and SearchMode(mode) is not SearchMode.FULLTEXT:
            vector = await self._embed_query(query)
            text = None if SearchMode(mode) is SearchMode.SEMANTIC else query
            return await self._found(text, vector, k=k, filter=filter, mode=mode)
        return await self._found(query, None, k=k, filter=filter, mode=mode)

    async def search_by_vector(
        self, vector: Sequence[float], *, k: int, filter: Mapping[str, Any] | None
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest to ``vector`` (of the embeddings' model, or the store's), best first, with
        their cosine similarity."""
        model = self._model(vector) if self.embedding is not None else self.model
        return await self._found(None, vector, k=k, filter=filter, mode=SearchMode.SEMANTIC, model=model)

    async def _found(
        self,
        query: str | None,
        vector: Sequence[float] | None,
        *,
        k: int,
        filter: Mapping[str, Any] | None,
        mode: SearchMode | str,
        model: str | None = None,
    ) -> list[tuple[Document, float]]:
        if vector is not None and model is None and self.embedding is not None:
            model = self._model(vector)
        hits = await self.tenant.search(
            query,
            vector=vector,
            model=model,
            mode=mode,
            kinds=[ItemKind.KNOWLEDGE],
            source=self.source,
            metadata=filter,
            limit=k,
        )
        return [
            (Document(id=hit.external_id, page_content=hit.content, metadata=hit.metadata), hit.score) for hit in hits
        ]


def _document(chunk: KnowledgeChunk) -> Document:
    return Document(id=chunk.external_id, page_content=chunk.content, metadata=dict(chunk.metadata))
