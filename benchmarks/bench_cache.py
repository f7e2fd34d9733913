#!/usr/bin/env python
"""The Redis cache against its baselines, in one run (see benchmarks/README.md, "Cache").

Run from the repository root, with PostgreSQL at ``--pg-dsn`` and Redis at ``--redis-url``::

    .venv/bin/python benchmarks/bench_cache.py               # ~1 minute
    .venv/bin/python benchmarks/bench_cache.py --quick       # smoke run
    .venv/bin/python benchmarks/bench_cache.py --json cache.json

Three measurements, each with its variants measured in interleaved rounds (rotating order):

1. **history read, last 50**: ``get_conversation_history(limit=50)`` with a warm Redis window
   (``recent_context_size=50``) vs the same call on PostgreSQL without the cache vs raw redis-py ``LRANGE`` of the
   same list + decoding to ``Message`` objects with the same codec. Targets: cached at least 0.7x raw and 5x PostgreSQL.
2. **append**: ``add_message`` with write-through to Redis vs the embedded in-process cache (whose write-through
   is a few microseconds of dict work: the "without Redis" baseline). Target: at most 1.3x the latency.
3. **rate-limit check**: ``t.rate_limit(user_id=...)`` (tenant config read through the cache + one Lua call) and
   the limiter's Lua call alone.

The sync API is measured (the async one adds the event loop's own overhead to every variant alike). A scratch
PostgreSQL database is created and dropped; the Redis keys live under a random prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import platform
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from typing import Any

import psycopg
import redis
from _harness import Measurement, format_table, measure_sync, write_json
from sqlalchemy.engine import make_url

from mnemostore import MnemoStore, NewMessage, Quotas
from mnemostore.cache._codec import decode_messages

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
HISTORY, APPEND, RATE = "history read (50)", "append", "rate-limit check"
CONTENT = (
    "Could you summarise the design doc we discussed yesterday and list the open questions about tenant "
    "isolation, quotas and the migration plan? Keep it under ten bullet points, please."
)
METADATA = {"channel": "web", "client": "bench", "locale": "en-GB"}


@contextmanager
def scratch_postgres(dsn: str) -> Iterator[str]:
    name = f"mnemostore_bench_cache_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def message(i: int) -> NewMessage:
    return NewMessage(
        role="assistant" if i % 2 else "user",
        content=CONTENT,
        model="gpt-4o-mini" if i % 2 else None,
        prompt_tokens=42,
        completion_tokens=120,
        metadata=dict(METADATA),
    )


def interleaved(
    variants: Sequence[tuple[str, Callable[[], object]]], path: str, *, seconds: float, rounds: int, warmup: float
) -> list[Measurement]:
    results = {name: Measurement("postgres", path, name, 1) for name, _ in variants}
    for _, op in variants:
        measure_sync(op, warmup)
    for r in range(rounds):
        order = list(variants[r % len(variants) :]) + list(variants[: r % len(variants)])
        for name, op in order:
            results[name].add(*measure_sync(op, seconds / rounds))
    return list(results.values())


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    prefix = f"mnsbench-{uuid.uuid4().hex[:8]}"
    raw = redis.Redis.from_url(args.redis_url)
    rows: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    seconds, rounds, warmup = (0.6, 2, 0.1) if args.quick else (args.seconds, args.rounds, 0.5)
    with scratch_postgres(args.pg_dsn) as url:
        setup = MnemoStore(url)
        setup.migrate()
        setup.close()
        cached = MnemoStore(url, redis_url=args.redis_url, cache_key_prefix=prefix, recent_context_size=50)
        uncached = MnemoStore(url, cache_enabled=False)
        embedded = MnemoStore(url, cache_key_prefix=prefix)  # in-process cache: no Redis round trip
        try:
            tenant = cached.create_tenant(
                f"bench-{uuid.uuid4().hex[:6]}",
                quotas=Quotas(max_messages=10**12, max_storage_bytes=10**15),
                config={"rate_limits": {"user": {"limit": 10**9, "window": 1}}},
            )
            t = cached.tenant(tenant.id)
            user = t.create_user(display_name="bench")
            conv = t.create_conversation(user.id)
            t.add_messages(conv.id, [message(i) for i in range(200)])
            with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)) as c:
                c.execute("ANALYZE")
            t.get_conversation_history(conv.id, limit=50)  # warm (a refill, or already written through)
            _meta_key, list_key = cached.cache.keys.context(tenant.id, conv.id)
            assert raw.llen(list_key) == 50, "the window is not in Redis"
            u = uncached.tenant(tenant.id)
            expected = u.get_conversation_history(conv.id, limit=50)
            assert t.get_conversation_history(conv.id, limit=50) == expected, "cached page differs from the database's"

            def raw_lrange() -> object:
                return decode_messages(raw.lrange(list_key, -50, -1), tenant.id, conv.id)

            history = interleaved(
                [
                    ("mnemostore, warm Redis window", lambda: t.get_conversation_history(conv.id, limit=50)),
                    ("raw LRANGE + decode", raw_lrange),
                    ("mnemostore, PostgreSQL (no cache)", lambda: u.get_conversation_history(conv.id, limit=50)),
                ],
                HISTORY,
                seconds=seconds,
                rounds=rounds,
                warmup=warmup,
            )
            by = {m.variant: m for m in history}
            warm, lrange, pg = (
                by["mnemostore, warm Redis window"],
                by["raw LRANGE + decode"],
                by["mnemostore, PostgreSQL (no cache)"],
            )
            ratio_raw = warm.ops_per_s / lrange.ops_per_s
            speedup = warm.ops_per_s / pg.ops_per_s
            speedup_p50 = median(pg.latencies) / median(warm.latencies)
            verdicts.append(
                {"target": "cached read >= 0.7x raw LRANGE+decode (ops/s)", "value": ratio_raw, "ok": ratio_raw >= 0.7}
            )
            verdicts.append(
                {"target": "cached read >= 5x PostgreSQL read (ops/s)", "value": speedup, "ok": speedup >= 5}
            )
            verdicts.append(
                {"target": "cached read >= 5x PostgreSQL read (p50)", "value": speedup_p50, "ok": speedup_p50 >= 5}
            )
            for m in history:
                rows.append({**m.summary(), "ratio": m.ops_per_s / by["raw LRANGE + decode"].ops_per_s})

            conv_cached = t.create_conversation(user.id).id
            e = embedded.tenant(tenant.id)
            conv_embedded = e.create_conversation(user.id).id
            msg = message(1)
            fields = {
                "role": msg.role,
                "content": msg.content,
                "model": msg.model,
                "prompt_tokens": msg.prompt_tokens,
                "completion_tokens": msg.completion_tokens,
                "metadata": msg.metadata,
            }
            append = interleaved(
                [
                    ("add_message, Redis write-through", lambda: t.add_message(conv_cached, **fields)),
                    ("add_message, in-process cache", lambda: e.add_message(conv_embedded, **fields)),
                ],
                APPEND,
                seconds=seconds,
                rounds=rounds,
                warmup=warmup,
            )
            by = {m.variant: m for m in append}
            base = by["add_message, in-process cache"]
            for m in append:
                rows.append({**m.summary(), "ratio": m.ops_per_s / base.ops_per_s})
            p50 = {name: median(m.latencies) for name, m in by.items()}
            slowdown = p50["add_message, Redis write-through"] / p50["add_message, in-process cache"]
            verdicts.append(
                {"target": "append with write-through <= 1.3x (p50)", "value": slowdown, "ok": slowdown <= 1.3}
            )
            window = cached.cache.context.read(tenant.id, conv_cached)
            assert window.messages is not None, "the write-through did not keep the window"

            bucket = [cached.cache.keys.rate(tenant.id, "*", "user", "bench")]
            limits = [(1e9, 1e6)]
            rate = interleaved(
                [
                    ("t.rate_limit(user_id=...)", lambda: t.rate_limit(user_id=user.id)),
                    ("limiter Lua call alone", lambda: cached.cache.rate_limiter.acquire(bucket, limits)),
                ],
                RATE,
                seconds=seconds,
                rounds=rounds,
                warmup=warmup,
            )
            rows.extend(m.summary() for m in rate)
            health = cached.cache_health()
            assert not health["degraded"], health
        finally:
            for store in (cached, uncached, embedded):
                store.close()
            keys = list(raw.scan_iter(match=f"{prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                raw.unlink(*keys[start : start + 500])
    return rows, verdicts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows, verdicts = run(args)
    version = redis.Redis.from_url(args.redis_url).info()["redis_version"]
    print(f"Python {platform.python_version()} on {platform.machine()}, Redis {version}")
    print(format_table(rows))
    print()
    for v in verdicts:
        print(f"{'PASS' if v['ok'] else 'MISS'}  {v['target']}: {v['value']:.2f}")
    if args.json:
        write_json(args.json, {"rows": rows, "verdicts": verdicts})
    return 0 if all(v["ok"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
