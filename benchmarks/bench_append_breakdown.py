#!/usr/bin/env python
"""Where a PostgreSQL append's time goes: the database's share and the library's, beside LangChain's append.

Run from the repository root (see benchmarks/README.md, "Where the append's time goes")::

    .venv/bin/python benchmarks/bench_append_breakdown.py            # ~1 minute
    .venv/bin/python benchmarks/bench_append_breakdown.py --appends 500 --rounds 3

Variants, timed in alternating (rotating) order inside each round, per-append figures the median over the rounds:

- ``raw autocommit INSERT``: one INSERT into ``messages``, its own implicit transaction (issue 13's raw baseline);
- ``LangChain's SQL``: what ``PostgresChatMessageHistory.add_message`` sends (an INSERT into its table, then COMMIT),
  on a plain psycopg connection, without LangChain's Python;
- ``LangChain``: ``PostgresChatMessageHistory.add_message`` itself (skipped when langchain-postgres is missing);
- ``append routine``: migration 0007's ``mnemostore_append_messages`` called directly as the application role,
  with the parameters the store sends: the database's share of a mnemostore append;
- ``mnemostore``: ``TenantStore.add_message``, split by the store's own query observer into the routine's round
  trip and the library's Python around it (validation, ids, the pooled connection, the cache write-through).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import psycopg
from _harness import environment_line
from bench_core import CONTENT, DEFAULT_PG_DSN, Config, scratch_postgres
from psycopg.types.json import Jsonb

from mnemostore import MnemoStore, Quotas, Settings
from mnemostore.store._pg_routines import _APPEND, _dumps

CONVERSATIONS = 100


def _row() -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "role": "user",
        "content": CONTENT,
        "model": None,
        "prompt_tokens": 42,
        "completion_tokens": 0,
        "metadata": {},
        "idempotency_key": None,
        "bytes": len(CONTENT.encode()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=1500, help="appends per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN)
    args = parser.parse_args(argv)
    begun = time.perf_counter()
    config = Config(0, 0, args.rounds, 0, 0, 0, args.pg_dsn, None)
    with scratch_postgres(config) as target:
        store = MnemoStore(target.url, settings=Settings(embedder="none"), pool_size=2, max_overflow=0)
        store.migrate()
        query_seconds = [0.0]
        store.observe_queries(lambda _kind, seconds: query_seconds.__setitem__(0, query_seconds[0] + seconds))
        tenant = store.create_tenant("breakdown", quotas=Quotas(max_messages=10**12, max_storage_bytes=10**15))
        scoped = store.tenant(tenant.id)
        user = scoped.get_or_create_user_by_external_id("bench-user").id
        conversations = [scoped.create_conversation(user_id=user).id for _ in range(CONVERSATIONS)]

        raw = psycopg.connect(target.raw_conninfo, autocommit=True)
        app = psycopg.connect(target.raw_conninfo, autocommit=True)
        app.execute(f'SET ROLE "{store.settings.pg_app_role}"')
        lc_sql = psycopg.connect(target.raw_conninfo)
        lc_sql.execute(
            "CREATE TABLE lc_sql (id SERIAL PRIMARY KEY, session_id UUID NOT NULL, message JSONB NOT NULL,"
            " created_at TIMESTAMPTZ NOT NULL DEFAULT NOW())"
        )
        lc_sql.execute("CREATE INDEX ON lc_sql (session_id)")
        lc_sql.commit()
        server = str(raw.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        seqs = dict.fromkeys(conversations, 10**9)

        def raw_insert(i: int) -> None:
            cid = conversations[i % CONVERSATIONS]
            seqs[cid] += 1
            raw.execute(
                "INSERT INTO messages (tenant_id, id, conversation_id, seq, role, content, prompt_tokens,"
                " completion_tokens, metadata, created_at) VALUES (%s, %s, %s, %s, 'user', %s, 42, 0, '{}', now())",
                (tenant.id, uuid.uuid4(), cid, seqs[cid], CONTENT),
            )

        def langchain_sql(i: int) -> None:
            message = {"type": "human", "data": {"content": CONTENT, "type": "human"}}
            lc_sql.execute(
                "INSERT INTO lc_sql (session_id, message) VALUES (%s, %s)",
                (conversations[i % CONVERSATIONS], Jsonb(message)),
            )
            lc_sql.commit()

        def routine(i: int) -> None:
            params = (tenant.id, conversations[i % CONVERSATIONS], datetime.now(UTC), Jsonb([_row()], dumps=_dumps))
            app.execute(_APPEND, (*params, False)).fetchone()

        def mnemostore(i: int) -> None:
            scoped.add_message(conversations[i % CONVERSATIONS], role="user", content=CONTENT, prompt_tokens=42)

        variants: dict[str, Callable[[int], None]] = {
            "raw autocommit INSERT": raw_insert,
            "LangChain's SQL (INSERT, COMMIT)": langchain_sql,
            "append routine, as the app role": routine,
            "mnemostore add_message": mnemostore,
        }
        notes: list[str] = []
        closers: list[Callable[[], None]] = [raw.close, app.close, lc_sql.close, store.close]
        try:
            from langchain_core.messages import HumanMessage
            from langchain_postgres import PostgresChatMessageHistory

            lc_conn = psycopg.connect(target.raw_conninfo)
            closers.append(lc_conn.close)
            PostgresChatMessageHistory.create_tables(lc_conn, "lc_message_store")
            histories = [
                PostgresChatMessageHistory("lc_message_store", str(uuid.uuid4()), sync_connection=lc_conn)
                for _ in range(CONVERSATIONS)
            ]
            human = HumanMessage(content=CONTENT)
            variants["LangChain add_message"] = lambda i: histories[i % CONVERSATIONS].add_message(human)
        except ImportError:
            notes.append("LangChain skipped: pip install langchain-postgres")

        per_append: dict[str, list[float]] = {name: [] for name in variants}
        library_share: list[float] = []
        query_share: list[float] = []
        names = list(variants)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                query_seconds[0] = 0.0
                started = time.perf_counter()
                for i in range(args.appends):
                    variants[name](i)
                elapsed = time.perf_counter() - started
                per_append[name].append(elapsed / args.appends * 1e6)
                if name == "mnemostore add_message":
                    query_share.append(query_seconds[0] / args.appends * 1e6)
                    library_share.append((elapsed - query_seconds[0]) / args.appends * 1e6)
        for close in closers:
            close()

    baseline = statistics.median(per_append.get("LangChain add_message") or per_append[names[1]])
    print(f"{'variant':36s} {'us/append':>9s} {'appends/s':>9s} {'vs LangChain':>12s}")
    for name, values in per_append.items():
        median = statistics.median(values)
        print(f"{name:36s} {median:9.0f} {1e6 / median:9.0f} {baseline / median:11.2f}x")
    print(
        f"  mnemostore = the routine's round trip {statistics.median(query_share):.0f} us"
        f" + the library's Python {statistics.median(library_share):.0f} us"
    )
    for note in notes:
        print(f"  note: {note}")
    print(environment_line([f"PostgreSQL {server}"], begun), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
