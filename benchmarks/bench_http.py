#!/usr/bin/env python
"""The HTTP service under load on loopback, beside the same operations through the Python API (one run).

Run from the repository root::

    .venv/bin/python benchmarks/bench_http.py                    # SQLite, ~1 minute
    .venv/bin/python benchmarks/bench_http.py --backend all      # SQLite and PostgreSQL, ~2 minutes
    .venv/bin/python benchmarks/bench_http.py --quick            # smoke run
    .venv/bin/python benchmarks/bench_http.py --json http.json

For each backend the script prepares a scratch database (a temporary SQLite file, or a PostgreSQL database it
creates and drops) with one tenant, an API key, one conversation per client for appends and 16 conversations of
200 messages for history reads. Then:

1. it starts ``mnemostore serve`` (uvicorn, one worker, no background indexer) in a subprocess on 127.0.0.1
   and loads it from this process with a minimal keep-alive HTTP/1.1 client on asyncio (one connection per
   client; httpx would spend more CPU than the server on a 2-core machine), at each concurrency for
   ``--seconds``: ``POST /v1/conversations/{id}/messages`` (append, each client its own conversation) and
   ``GET /v1/conversations/{id}/messages?limit=50`` (history);
2. it stops the server and runs the same operations, at the same concurrencies, through ``AsyncMnemoStore`` in
   this process (``add_message``, ``get_conversation_history(limit=50)``).

Reported per row: requests (or calls) per second, p50 and p99 latency, and for the HTTP rows the ratio to the
Python API row: ``x api`` = HTTP req/s / API calls/s (the share of throughput the HTTP layer keeps), and
``p50 x`` = HTTP p50 / API p50. Latencies are taken in the client, around each request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import percentile, write_json

from mnemostore import AsyncMnemoStore, MnemoStore, NewMessage

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
APPEND, HISTORY = "append", "history (50)"
CONTENT = (
    "Could you summarise the design doc we discussed yesterday and list the open questions about tenant "
    "isolation, quotas and the migration plan? Keep it under ten bullet points, please."
)
METADATA = {"channel": "web", "client": "bench", "locale": "en-GB"}
HISTORY_CONVERSATIONS = 16
HISTORY_SIZE = 200


@dataclass
class Row:
    backend: str
    path: str
    concurrency: int
    variant: str
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0
    ratio: float | None = None
    p50_ratio: float | None = None

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "backend": self.backend,
            "path": self.path,
            "concurrency": self.concurrency,
            "variant": self.variant,
            "ops": len(ordered),
            "errors": self.errors,
            "seconds": round(self.wall, 3),
            "ops_per_s": round(self.rate, 1),
            "p50_ms": round(1000 * percentile(ordered, 50), 3) if ordered else None,
            "p99_ms": round(1000 * percentile(ordered, 99), 3) if ordered else None,
            "http_over_api": None if self.ratio is None else round(self.ratio, 3),
            "p50_http_over_api": None if self.p50_ratio is None else round(self.p50_ratio, 2),
        }


# -- setup -----------------------------------------------------------------------------------------------------


@dataclass
class Fixture:
    url: str
    key: str
    append_ids: dict[str, list[str]]  # variant -> one conversation per client
    history_ids: list[str]


def prepare(url: str, max_clients: int) -> Fixture:
    with MnemoStore(url) as store:
        store.migrate()
        tenant = store.create_tenant(f"bench-http-{uuid.uuid4().hex[:8]}")
        t = store.tenant(tenant.id)
        _, key = t.create_api_key("bench")
        user = t.create_user(display_name="bench")
        append_ids = {
            variant: [str(t.create_conversation(user.id).id) for _ in range(max_clients)] for variant in ("http", "api")
        }
        history_ids = []
        for _ in range(HISTORY_CONVERSATIONS):
            conversation = t.create_conversation(user.id)
            batch = [
                NewMessage(role="user" if i % 2 == 0 else "assistant", content=CONTENT, metadata=METADATA)
                for i in range(HISTORY_SIZE)
            ]
            t.add_messages(conversation.id, batch)
            history_ids.append(str(conversation.id))
    return Fixture(url=url, key=key, append_ids=append_ids, history_ids=history_ids)


@contextmanager
def scratch_database(backend: str, pg_dsn: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="mnemostore-bench-http-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"mnemostore_bench_http_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(url: str) -> Iterator[int]:
    """``mnemostore serve`` in a subprocess on a free loopback port, stopped with SIGINT at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMOSTORE_")}
    # Like the Python API side, no background embedding: both measure the store and its caller only.
    env["MNEMOSTORE_SERVER_INDEXER"] = "false"
    command = [
        sys.executable,
        "-c",
        "from mnemostore.cli.main import main; main()",
        "--database-url",
        url,
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"serve did not start: {stderr}") from error
                time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


# -- the HTTP client -------------------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: writes a prepared request, reads status, headers and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def http_request(method: str, path: str, key: str, body: dict[str, Any] | None = None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {key}",
        "Connection: keep-alive",
        f"Content-Length: {len(payload)}",
    ]
    if body is not None:
        head.append("Content-Type: application/json")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


# -- load ------------------------------------------------------------------------------------------------------

ClientOp = Callable[[int], Awaitable[bool]]


async def run_load(op: ClientOp, clients: int, seconds: float, warmup: float) -> tuple[list[float], float, int]:
    """``clients`` tasks call ``op(client)`` back to back; latencies of the calls that start after the warm-up."""
    clock = time.perf_counter
    start = clock()
    measure_from = start + warmup
    deadline = measure_from + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = 0

    async def client(i: int) -> None:
        nonlocal errors
        mine = latencies[i]
        while True:
            t0 = clock()
            if t0 >= deadline:
                return
            ok = await op(i)
            if t0 >= measure_from:
                mine.append(clock() - t0)
                errors += not ok

    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = clock() - measure_from
    return [x for per in latencies for x in per], wall, errors


async def measure_http(
    fixture: Fixture, port: int, path: str, clients: int, seconds: float, warmup: float
) -> tuple[list[float], float, int]:
    connections = [await Connection.open(port) for _ in range(clients)]
    append = {"role": "user", "content": CONTENT, "metadata": METADATA}
    if path == APPEND:
        conversations = fixture.append_ids["http"]
        requests = [
            http_request("POST", f"/v1/conversations/{conversations[i]}/messages", fixture.key, append)
            for i in range(clients)
        ]
        expected = 201
    else:
        ids = fixture.history_ids
        requests = [
            http_request("GET", f"/v1/conversations/{ids[i % len(ids)]}/messages?limit=50", fixture.key)
            for i in range(clients)
        ]
        expected = 200

    async def op(i: int) -> bool:
        return await connections[i].send(requests[i]) == expected

    try:
        return await run_load(op, clients, seconds, warmup)
    finally:
        for connection in connections:
            connection.close()


async def measure_api(
    store: AsyncMnemoStore, tenant_id: Any, fixture: Fixture, path: str, clients: int, seconds: float, warmup: float
) -> tuple[list[float], float, int]:
    t = store.tenant(tenant_id)
    if path == APPEND:
        conversations = fixture.append_ids["api"]

        async def op(i: int) -> bool:
            await t.add_message(conversations[i], role="user", content=CONTENT, metadata=METADATA)
            return True

    else:
        ids = fixture.history_ids

        async def op(i: int) -> bool:
            page = await t.get_conversation_history(ids[i % len(ids)], limit=50)
            return len(page.messages) == 50

    return await run_load(op, clients, seconds, warmup)


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()  # the server's loop too (uvicorn picks uvloop when installed)
    except ImportError:
        return asyncio.new_event_loop()


def bench_backend(backend: str, url: str, args: argparse.Namespace) -> list[Row]:
    fixture = prepare(url, max(args.concurrency))
    rows: list[Row] = []
    print(f"[{backend}] serving and loading over HTTP…", file=sys.stderr)
    with server(url) as port:
        loop = new_loop()
        try:
            for path in (APPEND, HISTORY):
                for clients in args.concurrency:
                    row = Row(backend, path, clients, "HTTP (serve, 1 worker)")
                    row.latencies, row.wall, row.errors = loop.run_until_complete(
                        measure_http(fixture, port, path, clients, args.seconds, args.warmup)
                    )
                    rows.append(row)
        finally:
            loop.close()
    print(f"[{backend}] the same through the Python API…", file=sys.stderr)

    async def python_api() -> list[Row]:
        out = []
        async with AsyncMnemoStore(url) as store:
            key = await store.authenticate(fixture.key)
            assert key is not None
            for path in (APPEND, HISTORY):
                for clients in args.concurrency:
                    row = Row(backend, path, clients, "Python API (AsyncMnemoStore)")
                    row.latencies, row.wall, row.errors = await measure_api(
                        store, key.tenant_id, fixture, path, clients, args.seconds, args.warmup
                    )
                    out.append(row)
        return out

    loop = new_loop()
    try:
        api_rows = loop.run_until_complete(python_api())
    finally:
        loop.close()
    by_key = {(r.path, r.concurrency): r for r in api_rows}
    ordered: list[Row] = []
    for row in rows:
        api = by_key[(row.path, row.concurrency)]
        row.ratio = row.rate / api.rate if api.rate else None
        http_p50, api_p50 = percentile(sorted(row.latencies), 50), percentile(sorted(api.latencies), 50)
        row.p50_ratio = http_p50 / api_p50 if api_p50 else None
        ordered += [row, api]
    return ordered


def format_rows(rows: list[Row]) -> str:
    headers = ["backend", "path", "clients", "variant", "req/s", "p50 ms", "p99 ms", "x api", "p50 x", "errors"]
    body = []
    for row in rows:
        s = row.summary()
        body.append(
            [
                s["backend"],
                s["path"],
                str(s["concurrency"]),
                s["variant"],
                f"{s['ops_per_s']:,.0f}",
                f"{s['p50_ms']:.2f}" if s["p50_ms"] is not None else "-",
                f"{s['p99_ms']:.2f}" if s["p99_ms"] is not None else "-",
                f"{s['http_over_api']:.2f}" if s["http_over_api"] is not None else "",
                f"{s['p50_http_over_api']:.1f}" if s["p50_http_over_api"] is not None else "",
                str(s["errors"]),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    right = {2, 4, 5, 6, 7, 8, 9}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    for i, cells in enumerate(body):
        if i and i % 2 == 0:
            lines.append("")
        lines.append(line(cells))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="sqlite")
    parser.add_argument("--pg-dsn", default=os.environ.get("MNEMOSTORE_TEST_PG_DSN", DEFAULT_PG_DSN))
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per row (default 4)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured time before each row (default 0.5)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--quick", action="store_true", help="1 s per row: a smoke run, noisy figures")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = 1.0, 0.2
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    rows: list[Row] = []
    for backend in backends:
        try:
            with scratch_database(backend, args.pg_dsn) as url:
                rows += bench_backend(backend, url, args)
        except Exception as error:
            if args.backend != "all" or backend == "sqlite":
                raise
            print(f"[{backend}] skipped: {type(error).__name__}: {error}", file=sys.stderr)
    print(format_rows(rows))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"\n{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load[0]:.1f}"
        if load
        else ""
    )
    if args.json:
        write_json(
            args.json,
            {
                "environment": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_average": load,
                    "seconds": args.seconds,
                },
                "results": [row.summary() for row in rows],
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
