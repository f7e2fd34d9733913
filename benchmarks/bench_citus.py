#!/usr/bin/env python
"""Append and history throughput on a Citus cluster against one PostgreSQL, same clients, same machine (issue 16).

Run from the repository root, as root (the nodes run as the ``postgres`` user; see benchmarks/README.md, "Citus")::

    .venv/bin/python benchmarks/bench_citus.py                 # 4 clients, 5 rounds of 500 operations each
    .venv/bin/python benchmarks/bench_citus.py --clients 8 --ops 1000 --rounds 7 --json citus.json

It starts a private coordinator and two workers (tests/fix_citus.py's ``CitusCluster``: PostgreSQL 15 + Citus 13,
``fsync=off``) and makes two databases on the coordinator's server: one joined into the cluster (the ``citus``
extension, both workers; ``mnemostore db upgrade`` distributes it), and one plain (no extension: Citus stays out
of it, so it is one PostgreSQL with the same binaries, settings and machine). Each gets ``--tenants`` tenants
with one conversation each, through the public API.

Then, in ``--rounds`` rounds, the two databases take turns (the order flips every round). In each turn
``--clients`` threads share one sync store (``cache_enabled=False``, ``embedder="none"``, a pool of one
connection per client), each on its own tenant's conversation, and run ``--ops`` operations of each path:

* ``append``: ``add_message`` (the hot path's routine: on Citus a distributed function, run on the tenant's worker);
* ``history``: ``get_conversation_history(limit=50)`` (the other routine).

A second pass runs one client alone, for the per-operation latency without queueing: the difference of the
medians is the coordinator hop's cost per operation. Reported: the median over rounds of each turn's throughput,
the ratio Citus / PostgreSQL, and the single-client p50 latencies and their difference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import environment_line, write_json  # noqa: E402

from mnemostore import MnemoStore, Settings, TenantStore  # noqa: E402
from mnemostore.ops import migrate  # noqa: E402
from tests.fix_citus import CitusCluster, citus_missing_reason  # noqa: E402

PATHS = ("append", "history")


def plain_database(cluster: CitusCluster) -> str:
    name = f"mnemostore_plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.dsn(database=name).replace("postgresql://", "postgresql+psycopg://", 1)


def prepare(url: str, tenants: int, clients: int) -> tuple[MnemoStore, list[tuple[TenantStore, uuid.UUID]]]:
    migrate.upgrade(Settings(database_url=url))
    store = MnemoStore(url, settings=Settings(embedder="none"), cache_enabled=False, pool_size=clients, max_overflow=0)
    scopes = []
    for n in range(tenants):
        t = store.tenant(store.create_tenant(f"bench-{n}-{uuid.uuid4().hex[:6]}").id)
        conversation = t.create_conversation(t.create_user().id)
        t.add_messages(conversation.id, [{"role": "user", "content": f"warm-up {i}"} for i in range(60)])
        scopes.append((t, conversation.id))
    return store, scopes


def operation(path: str, t: TenantStore, conversation: uuid.UUID) -> Callable[[], object]:
    if path == "append":
        return lambda: t.add_message(conversation, role="user", content="a message of about this length, typical")
    return lambda: t.get_conversation_history(conversation, limit=50)


def turn(scopes: list[tuple[TenantStore, uuid.UUID]], path: str, clients: int, ops: int) -> tuple[float, list[float]]:
    """(operations per second over all clients, every operation's latency)."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        t, conversation = scopes[index % len(scopes)]
        call = operation(path, t, conversation)
        mine = []
        start.wait()
        for _ in range(ops):
            began = time.perf_counter()
            call()
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return clients * ops / (time.perf_counter() - began), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--tenants", type=int, default=8)
    parser.add_argument("--ops", type=int, default=500, help="operations per client, path and turn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    reason = citus_missing_reason(build=True)
    if reason is not None:
        sys.exit(reason)
    cluster = CitusCluster(Path(tempfile.mkdtemp(prefix="mnemostore-bench-citus-")))
    cluster.start()
    try:
        # The cluster's database migrates first: its migration creates the store's roles on every node (Citus
        # propagates them from a database with the extension; roles made from the plain database would stay on the
        # coordinator, and the workers would not know them).
        engines = {"citus": cluster.create_database(), "postgres": plain_database(cluster)}
        prepared = {kind: prepare(url, args.tenants, args.clients) for kind, url in engines.items()}
        throughput: dict[tuple[str, str], list[float]] = {(k, p): [] for k in engines for p in PATHS}
        alone: dict[tuple[str, str], list[float]] = {(k, p): [] for k in engines for p in PATHS}
        for number in range(args.rounds):
            order = list(engines) if number % 2 == 0 else list(reversed(engines))
            for kind in order:
                _store, scopes = prepared[kind]
                for path in PATHS:
                    rate, _ = turn(scopes, path, args.clients, args.ops)
                    throughput[kind, path].append(rate)
                    _, latencies = turn(scopes, path, 1, args.ops)
                    alone[kind, path].append(statistics.median(latencies))
            print(f"round {number + 1}/{args.rounds} done", flush=True)
        for store, _ in prepared.values():
            store.close()
    finally:
        cluster.stop()
    print(environment_line(["PostgreSQL 15 + Citus 13.2 (coordinator + 2 workers, private, fsync off)"], started))
    print(
        f"{args.clients} clients on {args.tenants} tenants, {args.ops} operations each per turn, "
        f"{args.rounds} rounds (medians over rounds)"
    )
    header = (
        f"{'path':<8} {'PG ops/s':>9} {'Citus ops/s':>12} {'Citus/PG':>9} "
        f"{'PG p50 ms':>10} {'Citus p50 ms':>13} {'hop ms/op':>10}"
    )
    print(header)
    report: dict[str, Any] = {"clients": args.clients, "tenants": args.tenants, "ops": args.ops, "paths": {}}
    for path in PATHS:
        pg, citus = (statistics.median(throughput[k, path]) for k in ("postgres", "citus"))
        pg_p50, citus_p50 = (statistics.median(alone[k, path]) * 1000 for k in ("postgres", "citus"))
        print(
            f"{path:<8} {pg:>9.0f} {citus:>12.0f} {citus / pg:>9.2f} {pg_p50:>10.2f} {citus_p50:>13.2f} "
            f"{citus_p50 - pg_p50:>10.2f}"
        )
        report["paths"][path] = {
            "postgres_ops_per_s": pg,
            "citus_ops_per_s": citus,
            "ratio": citus / pg,
            "postgres_p50_ms": pg_p50,
            "citus_p50_ms": citus_p50,
            "hop_ms": citus_p50 - pg_p50,
        }
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
