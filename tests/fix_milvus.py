"""Milvus fixtures: one Milvus Lite server for the session, closed at teardown, and a collection prefix per test.

Milvus Lite (the milvus-lite package) serves a local folder over gRPC from threads of this process, on a free
port: every store of the session (and a worker subprocess) reaches it at its ``http://127.0.0.1:<port>`` URI, as
it would a Milvus server. The tests are skipped, saying why, when pymilvus or milvus-lite is not installed.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnemostore.search import MilvusIndex

MISSING = "needs the milvus extra (pymilvus and milvus-lite): pip install 'mnemostore[milvus]'"


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of the session's Milvus Lite server."""
    pytest.importorskip("pymilvus", reason=MISSING)
    manager = pytest.importorskip("milvus_lite.server_manager", reason=MISSING).server_manager_instance
    path = str(Path(tmp_path_factory.mktemp("milvus")) / "milvus.db")
    uri = manager.start_and_get_uri(path)
    assert uri is not None, "Milvus Lite did not start (see the log)"
    yield uri
    manager.release_server(path)


@pytest.fixture
def milvus(milvus_uri: str) -> Iterator[MilvusIndex]:
    """A client of the session's server with a prefix of its own (the test's stores use it too: ``settings_of``);
    its collections are dropped after the test."""
    index = MilvusIndex(milvus_uri, prefix=f"t{uuid.uuid4().hex[:12]}")
    yield index
    for name in index.names():
        index.drop(name)
    index.close()


def settings_of(milvus: MilvusIndex) -> dict[str, Any]:
    """The store settings that put its vectors in ``milvus``'s collections."""
    return {"vector_backend": "milvus", "milvus_uri": milvus.uri, "milvus_collection_prefix": milvus.prefix}


def entities_per_item(milvus: MilvusIndex, tenant_id: uuid.UUID) -> Counter[uuid.UUID]:
    """How many entities each of the tenant's items has, over every collection."""
    counts: Counter[uuid.UUID] = Counter()
    for name in milvus.names():
        for batch in milvus.scan(name, tenant_id=tenant_id):
            counts.update(item for _, _, item in batch)
    return counts
