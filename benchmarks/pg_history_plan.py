#!/usr/bin/env python
"""Show PostgreSQL reading a history page through the wrong index without statistics (README, finding 6).

``messages`` has two unique indexes that start with ``(tenant_id, conversation_id)``: one on ``seq`` (the history
index) and one on ``idempotency_key``. Without statistics (a new database, or a table that grew faster than
autovacuum analyzes it) the planner expects about one row per conversation, so both indexes look alike, and it may
take the smaller idempotency one and sort the whole conversation. This script builds that situation on purpose
(autovacuum off for ``messages``, 50,000 messages in five conversations), then shows the plan and the time of the
history query:

1. without statistics, schema as it is;
2. after ANALYZE;
3. without statistics again (a second scratch database), with the idempotency constraint replaced by a partial
   unique index (``WHERE idempotency_key IS NOT NULL``), the fix the README suggests.

    .venv/bin/python benchmarks/pg_history_plan.py [--pg-dsn URL]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Sequence

import psycopg
from _raw import RawPostgres
from bench_core import DEFAULT_PG_DSN, Config, Fixture, Target, prepare, scratch_postgres

IDEMPOTENCY = "uq_messages_idempotency_key"


def admin(target: Target, sql: str) -> None:
    with psycopg.connect(target.raw_conninfo, autocommit=True) as conn:
        conn.execute(sql)


def big_conversation(fx: Fixture, title: str, size: int) -> uuid.UUID:
    conversation = fx.conversation(title)
    for start in range(0, size, len(fx.batch)):
        fx.tenant.add_messages(conversation, fx.batch[: min(len(fx.batch), size - start)])
    return conversation


def report(target: Target, fx: Fixture, conversation: uuid.UUID, label: str) -> None:
    """The plan's access path and the median time of 30 reads on a fresh connection (as a new pool member)."""
    raw = RawPostgres(target.raw_conninfo, fx.tenant.tenant_id)
    try:
        params = (fx.tenant.tenant_id, conversation, 51)
        raw.cur.execute(f"EXPLAIN {raw.history_sql}", params)
        plan = [str(row[0]).strip() for row in raw.cur.fetchall()]
        scan = next((line for line in plan if "Scan" in line), plan[0])
        sort = any(line.startswith("->  Sort") or line.startswith("Sort") for line in plan)
        times = []
        for _ in range(30):
            start = time.perf_counter()
            raw.history(conversation, 51)
            times.append(time.perf_counter() - start)
        median = sorted(times)[len(times) // 2] * 1000
        print(f"{label:<52} {median:7.2f} ms  {scan.split(' on ')[0].removeprefix('->  ')}{' + Sort' if sort else ''}")
    finally:
        raw.close()


def scenario(config: Config, size: int, others: int, *, partial: bool) -> None:
    """A new scratch database whose ``messages`` table is never analyzed (as before autovacuum first gets to it)."""
    with scratch_postgres(config) as target:
        fx = prepare(target, config)
        try:
            admin(target, "ALTER TABLE messages SET (autovacuum_enabled = false)")
            if partial:
                admin(target, f"ALTER TABLE messages DROP CONSTRAINT {IDEMPOTENCY}")
                admin(
                    target,
                    f"CREATE UNIQUE INDEX {IDEMPOTENCY} ON messages (tenant_id, conversation_id, idempotency_key) "
                    "WHERE idempotency_key IS NOT NULL",
                )
            conversation = big_conversation(fx, "history", size)
            for i in range(others):  # other conversations: the table grows, the planner still has no statistics
                big_conversation(fx, f"other {i}", size)
            if partial:
                report(target, fx, conversation, "3. no statistics yet, partial idempotency index")
                return
            print(f"history page (51 newest of {size:,} messages), {target.server_version}:")
            report(target, fx, conversation, "1. no statistics yet, schema as it is")
            admin(target, "ANALYZE messages")
            report(target, fx, conversation, "2. after ANALYZE")
        finally:
            fx.store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PostgreSQL history plan with stale statistics (see README).")
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN)
    parser.add_argument("--size", type=int, default=10_000, help="messages in the conversation read (10000)")
    parser.add_argument("--others", type=int, default=4, help="other conversations of --size messages (4)")
    args = parser.parse_args(argv)
    config = Config(
        duration=0,
        warmup=0,
        rounds=1,
        history_size=1000,
        history_limit=50,
        batch=1000,
        pg_dsn=args.pg_dsn,
        sqlite_dir=None,
    )
    scenario(config, args.size, args.others, partial=False)
    scenario(config, args.size, args.others, partial=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
