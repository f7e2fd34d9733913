#!/usr/bin/env python
"""Memory of ``mnemostore serve``: the server process's RSS idle and after each of three rounds of 10k requests.

Run from the repository root (see benchmarks/README.md, "Memory of serve")::

    .venv/bin/python benchmarks/bench_rss.py                   # SQLite and PostgreSQL, ~5-7 min each
    .venv/bin/python benchmarks/bench_rss.py --quick           # smoke run: 3 rounds of 1,000 requests
    .venv/bin/python benchmarks/bench_rss.py --backend sqlite --requests 20000 --json rss.json

For each backend the script prepares a scratch database (a temporary SQLite file, or a PostgreSQL database it
creates and drops) with one tenant, an API key, one user and ``--conversations`` conversations (20) of 60 messages,
then starts ``mnemostore serve`` (uvicorn, one worker, default settings but no background indexer, so the
in-process recent-context cache is on) in a subprocess on a free loopback port. It reads the server's resident set
size (``VmRSS`` in ``/proc/<pid>/status``, summed over the process and any children) once the server answers and
has been idle for ``--settle`` seconds, then after each round of ``--requests`` requests (10,000), again after
``--settle`` seconds. A round is ``--clients`` (4) httpx ``AsyncClient`` tasks on keep-alive connections, each
alternating ``POST /v1/conversations/{id}/messages`` (an append) and ``GET /v1/conversations/{id}/messages?limit=50``
(a history page), on conversations drawn at random.

Printed: the RSS idle and after each round, the peak (``VmHWM``), and the growth between the last two rounds
(the target: none; the threshold below which it counts as none: ``--threshold`` MiB, 2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _harness import write_json
from bench_http import CONTENT, DEFAULT_PG_DSN, METADATA, free_port, scratch_database

from mnemostore import MnemoStore, NewMessage, Settings

MIB = 1024 * 1024
PAGE = 50


@dataclass(slots=True)
class Fixture:
    key: str
    conversations: list[str]


@dataclass(slots=True)
class Result:
    backend: str
    idle: float  # bytes
    rounds: list[float] = field(default_factory=list)  # bytes after each round
    peak: float = 0.0
    errors: int = 0
    seconds: list[float] = field(default_factory=list)

    @property
    def growth(self) -> float:
        return self.rounds[-1] - self.rounds[-2] if len(self.rounds) >= 2 else 0.0


def prepare(url: str, conversations: int) -> Fixture:
    with MnemoStore(url, settings=Settings(embedder="none")) as store:
        store.migrate()
        tenant = store.create_tenant(f"bench-rss-{uuid.uuid4().hex[:8]}")
        t = store.tenant(tenant.id)
        _, key = t.create_api_key("bench")
        user = t.create_user(display_name="bench")
        ids = []
        for _ in range(conversations):
            conversation = t.create_conversation(user.id)
            t.add_messages(
                conversation.id,
                [
                    NewMessage(role="user" if i % 2 == 0 else "assistant", content=CONTENT, metadata=METADATA)
                    for i in range(PAGE + 10)
                ],
            )
            ids.append(str(conversation.id))
    return Fixture(key=key, conversations=ids)


# -- the server and its memory ---------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, str]:
    fields = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn with one worker has none; counted in case a version spawns one)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def rss(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in bytes, summed over ``pid`` and its descendants."""
    total = peak = 0.0
    for member in _tree(pid):
        try:
            fields = _status(member)
        except OSError:
            continue
        total += int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        peak += int(fields.get("VmHWM", "0 kB").split()[0]) * 1024
    return total, peak


@contextmanager
def server(url: str, log: Path, embedder: str | None) -> Iterator[tuple[int, int]]:
    """``mnemostore serve`` in a subprocess on a free loopback port: (pid, port); stopped with SIGINT at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMOSTORE_")}
    env["MNEMOSTORE_SERVER_INDEXER"] = "false"
    if embedder is not None:
        env["MNEMOSTORE_EMBEDDER"] = embedder
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
    with open(log, "wb") as errors:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start: {log.read_text()}") from error
                time.sleep(0.05)
        yield process.pid, port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_idle(pid: int, port: int, settle: float) -> None:
    """Wait for the embedding model the server loads in the background (``/readyz``), then for ``settle`` seconds
    in which the RSS moves by less than 0.5 MiB (at most 60 s more)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        checks = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json().get("checks", {})
        if checks.get("embedder", {}).get("status") != "warn":
            break
        time.sleep(0.5)
    deadline = time.monotonic() + 60
    before = rss(pid)[0]
    while time.monotonic() < deadline:
        time.sleep(settle)
        now = rss(pid)[0]
        if abs(now - before) < MIB / 2:
            return
        before = now


# -- load ------------------------------------------------------------------------------------------------------


async def one_round(port: int, fixture: Fixture, requests: int, clients: int, seed: int) -> int:
    """``requests`` requests from ``clients`` tasks, alternating append and history page; returns the errors."""
    rng = random.Random(seed)
    body = {"role": "user", "content": CONTENT, "metadata": METADATA}
    headers = {"Authorization": f"Bearer {fixture.key}"}
    counter = iter(range(requests))
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                path = f"/v1/conversations/{rng.choice(fixture.conversations)}/messages"
                if i % 2 == 0:
                    response = await client.post(path, json=body)
                    errors += response.status_code != 201
                else:
                    response = await client.get(path, params={"limit": PAGE})
                    errors += response.status_code != 200

        await asyncio.gather(*(worker() for _ in range(clients)))
    return errors


def bench_backend(backend: str, url: str, args: argparse.Namespace) -> Result:
    fixture = prepare(url, args.conversations)
    with (
        tempfile.TemporaryDirectory(prefix="mnemostore-bench-rss-") as folder,
        server(url, Path(folder) / "log", args.embedder) as (pid, port),
    ):
        wait_until_idle(pid, port, args.settle)
        result = Result(backend, idle=rss(pid)[0])
        print(f"  {backend}: idle {result.idle / MIB:.1f} MiB", file=sys.stderr, flush=True)
        for r in range(args.rounds):
            started = time.perf_counter()
            result.errors += asyncio.run(one_round(port, fixture, args.requests, args.clients, seed=r))
            result.seconds.append(time.perf_counter() - started)
            time.sleep(args.settle)
            now, result.peak = rss(pid)
            result.rounds.append(now)
            print(
                f"  {backend}: after round {r + 1} ({result.seconds[-1]:.0f} s) {now / MIB:.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
    return result


def report(results: Sequence[Result], args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    rounds = args.rounds
    header = f"{'backend':<9}{'idle':>8}" + "".join(f"{f'after {i + 1}':>10}" for i in range(rounds))
    header += f"{'peak':>9}{'last-prev':>11}{'errors':>8}  verdict (<= {args.threshold:g} MiB)"
    lines = [header, "-" * len(header)]
    rows = []
    for res in results:
        ok = res.growth <= args.threshold * MIB
        lines.append(
            f"{res.backend:<9}{res.idle / MIB:>8.1f}"
            + "".join(f"{value / MIB:>10.1f}" for value in res.rounds)
            + f"{res.peak / MIB:>9.1f}{res.growth / MIB:>+11.2f}{res.errors:>8}  {'no growth' if ok else 'GROWS'}"
        )
        rows.append(
            {
                "backend": res.backend,
                "idle_mib": round(res.idle / MIB, 2),
                "after_round_mib": [round(v / MIB, 2) for v in res.rounds],
                "peak_mib": round(res.peak / MIB, 2),
                "growth_last_round_mib": round(res.growth / MIB, 2),
                "round_seconds": [round(s, 1) for s in res.seconds],
                "errors": res.errors,
                "met": ok,
            }
        )
    return "\n".join(lines), rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="smoke run: rounds of 1,000 requests")
    parser.add_argument("--requests", type=int, help="requests per round (10,000; --quick 1,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of requests (3)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--conversations", type=int, default=20, help="conversations the requests go to (20)")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before each reading (2)")
    parser.add_argument("--threshold", type=float, default=2.0, help="growth that still counts as none, MiB (2)")
    parser.add_argument(
        "--embedder", help="MNEMOSTORE_EMBEDDER for the server (default: the settings' default, which loads a model)"
    )
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN, help=f"server for the scratch database ({DEFAULT_PG_DSN})")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.requests = args.requests or (1_000 if args.quick else 10_000)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the growth is between the last two)")
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    started = time.perf_counter()
    results: list[Result] = []
    for backend in backends:
        with scratch_database(backend, args.pg_dsn) as url:
            results.append(bench_backend(backend, url, args))
    table, rows = report(results, args)
    print()
    print(
        f"RSS of `mnemostore serve` in MiB: idle, then after each round of {args.requests:,} requests "
        f"(half appends, half history pages of {PAGE}; {args.clients} httpx clients)\n"
    )
    print(table)
    print(
        f"\n{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"httpx {httpx.__version__}; load average {os.getloadavg()[1]:.2f}; total {time.perf_counter() - started:.0f} s"
    )
    if args.json is not None:
        write_json(args.json, {"requests": args.requests, "clients": args.clients, "results": rows})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
