"""LangChain on mnemostore: a chat message history, a vector store over knowledge chunks and its retriever, and
embeddings adapters. Needs the ``langchain`` extra: ``pip install 'mnemostore[langchain]'``.

* ``MnemostoreChatMessageHistory``: a session's messages, kept as the conversation whose external id is the
  session id (works with ``RunnableWithMessageHistory``).
* ``MnemostoreVectorStore`` (and ``MnemostoreRetriever``, from ``as_retriever``): documents kept as the knowledge
  chunks of one source, found by mnemostore's own search.
* ``LangChainEmbedder``: a LangChain ``Embeddings`` object as the store's embedder; ``MnemostoreEmbeddings``: the
  store's embedder as a LangChain object.
"""

try:
    import langchain_core  # noqa: F401
except ImportError as error:  # pragma: no cover - the extra is installed wherever the tests run
    raise ImportError(
        "mnemostore.integrations.langchain needs langchain-core: pip install 'mnemostore[langchain]'"
    ) from error

from mnemostore.integrations.langchain._embeddings import LangChainEmbedder, MnemostoreEmbeddings
from mnemostore.integrations.langchain._history import DEFAULT_USER, MnemostoreChatMessageHistory
from mnemostore.integrations.langchain._messages import from_langchain, to_langchain
from mnemostore.integrations.langchain._vectorstore import (
    DEFAULT_SOURCE,
    MnemostoreRetriever,
    MnemostoreVectorStore,
)

__all__ = [
    "DEFAULT_SOURCE",
    "DEFAULT_USER",
    "LangChainEmbedder",
    "MnemostoreChatMessageHistory",
    "MnemostoreEmbeddings",
    "MnemostoreRetriever",
    "MnemostoreVectorStore",
    "from_langchain",
    "to_langchain",
]
