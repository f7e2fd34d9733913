"""Embeddings both ways: a LangChain ``Embeddings`` as mnemostore's ``Embedder``, and the reverse.

mnemostore embeds what it stores itself (its indexer, and read-your-writes in search), with the one embedder its
store was opened with, and keeps the vectors in its own index (the embedded index on SQLite, pgvector on
PostgreSQL). ``LangChainEmbedder`` lets that embedder be any LangChain embeddings object, so a LangChain program
keeps its model and mnemostore keeps one storage path for vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from langchain_core.embeddings import Embeddings

from mnemostore.errors import ConfigurationError, EmbedderUnavailable, EmbeddingDimensionMismatch
from mnemostore.search import Embedder

__all__ = ["LangChainEmbedder", "MnemostoreEmbeddings", "default_model_name"]

T = TypeVar("T")
# The width of embeddings.model, where the name is recorded beside every vector.
_MAX_NAME = 200


class LangChainEmbedder(Embedder):
    """A LangChain ``Embeddings`` object as the embedder of a mnemostore store.

    Give it to the store, and everything the store indexes and searches by meaning is embedded by it::

        store = MnemoStore(url, embedder=LangChainEmbedder(OpenAIEmbeddings()))

    Documents go through ``embed_documents``, search queries through ``embed_query``; vectors are scaled to unit
    length (cosine similarity). Any error of the embeddings object becomes ``EmbedderUnavailable``.

    Args:
        name: recorded beside every vector, so that a change of model is noticed (``mnemostore reindex``
            re-embeds); default ``langchain:<class>[:<model>]:<dimension>``, the model read from a ``model`` or
            ``model_name`` attribute when the object has one.
        dimension: the vectors' size; default: asked of the model once, by embedding a short text.
    """

    def __init__(
        self, embeddings: Embeddings, *, name: str | None = None, dimension: int | None = None, batch_size: int = 64
    ) -> None:
        if not isinstance(embeddings, Embeddings):
            raise ConfigurationError(
                f"LangChainEmbedder takes a langchain_core Embeddings object, got {type(embeddings).__name__}"
            )
        if dimension is not None and (isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1):
            raise ConfigurationError(f"dimension must be a positive integer, got {dimension!r}")
        self.embeddings = embeddings
        self.batch_size = batch_size
        self.dimension = dimension if dimension is not None else len(self._call(lambda: embeddings.embed_query("size")))
        self.name = name if name is not None else default_model_name(embeddings, self.dimension)
        if not self.name or len(self.name) > _MAX_NAME:
            raise ConfigurationError(f"the embedder's name must have 1 to {_MAX_NAME} characters, got {self.name!r}")

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        vectors = self._call(lambda: self.embeddings.embed_documents(texts))
        if len(vectors) != len(texts):
            raise EmbedderUnavailable(
                f"the LangChain embeddings {type(self.embeddings).__name__} returned {len(vectors)} vectors for "
                f"{len(texts)} texts"
            )
        return [_unit(vector) for vector in vectors]

    def embed_query(self, text: str) -> list[float]:
        """The query's unit vector, from the LangChain object's ``embed_query``."""
        vector = self._call(lambda: self.embeddings.embed_query(text))
        if len(vector) != self.dimension:
            raise EmbeddingDimensionMismatch(self.dimension, len(vector), f" from embedder {self.name!r}")
        return _unit(vector)

    def _call(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except Exception as error:  # any integration's own errors: the answer is the same
            raise EmbedderUnavailable(
                f"the LangChain embeddings {type(self.embeddings).__name__} failed ({type(error).__name__}: {error})"
            ) from error


class MnemostoreEmbeddings(Embeddings):
    """A mnemostore ``Embedder`` (the store's own, e.g. all-MiniLM-L6-v2) as a LangChain ``Embeddings`` object."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One unit vector per text, in order."""
        return self.embedder.embed(texts)

    def embed_query(self, text: str) -> list[float]:
        """The unit vector a search looks for ``text`` with."""
        return self.embedder.embed_query(text)


def default_model_name(embeddings: Embeddings, dimension: int) -> str:
    """``langchain:<class>[:<model>]:<dimension>``: the name vectors of ``embeddings`` are recorded under."""
    parts = ["langchain", type(embeddings).__name__]
    for attribute in ("model", "model_name"):
        value = getattr(embeddings, attribute, None)
        if isinstance(value, str) and value:
            parts.append(value)
            break
    parts.append(str(dimension))
    return ":".join(parts)[:_MAX_NAME]


def _unit(vector: Sequence[float]) -> list[float]:
    values = [float(x) for x in vector]
    norm = math.sqrt(sum(x * x for x in values))
    return [x / norm for x in values] if norm > 0 else values
