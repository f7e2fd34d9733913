"""Fault injection: writers and the server killed -9 mid-load, Redis killed, frozen and restarted, PostgreSQL stopped.

Every scenario runs on private servers (tests/fix_faults.py), appends with idempotency keys, reads the history after
each acknowledgement, and then checks the database: each acknowledged key is there exactly once at the seq it was
acknowledged with, every conversation's seqs run 1..last_seq without a gap and match its counters, the tenant's kept
usage equals a recount, and a history read through Redis shows the newest messages. The figures (acknowledged, lost,
duplicated, failed requests, stale reads) are printed in the terminal summary; lost, duplicated and stale must be 0.
Failed requests are allowed only where the promise allows them: while the server or PostgreSQL is down, never
because of Redis. Short by default (CI); ``--faults-long`` or ``MNEMOSTORE_FAULTS=long`` for the long run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from mnemostore import MnemoStore
from mnemostore.errors import BackendUnavailable
from tests.fault_writer import HISTORY_LIMIT, content_of, parse_log
from tests.fix_api import ApiTenant, make_tenant
from tests.fix_faults import FaultBudget, Figures, PostgresCluster, ServeProcess
from tests.fix_redis import RedisProcess

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


# --- checking the database ---------------------------------------------------------------------------------------


def check_database(
    cluster: PostgresCluster,
    database: str,
    tenant_id: str,
    acked: dict[str, int],
    conversation_of: Callable[[str], str],
    figures: Figures,
    *,
    redis_url: str | None = None,
    prefix: str = "mns",
) -> list[str]:
    """Compare the database with what was acknowledged; fill ``figures`` (lost, duplicated) and return the problems
    found beyond those (gaps, counters, usage, a stale cached history)."""
    problems: list[str] = []
    with psycopg.connect(cluster.dsn(database)) as conn:
        rows = conn.execute(
            "SELECT conversation_id::text, seq, idempotency_key, content FROM messages WHERE tenant_id = %s",
            (tenant_id,),
        ).fetchall()
        counters = conn.execute(
            "SELECT id::text, message_count, last_seq FROM conversations WHERE tenant_id = %s", (tenant_id,)
        ).fetchall()
    stored = {key: (conversation, seq) for conversation, seq, key, _ in rows}
    figures.acknowledged = len(acked)
    figures.lost = sum(1 for key, seq in acked.items() if stored.get(key) != (conversation_of(key), seq))
    keys = Counter(key for _, _, key, _ in rows)
    contents = Counter(content for _, _, _, content in rows)
    figures.duplicated = sum(n - 1 for n in keys.values() if n > 1) + sum(n - 1 for n in contents.values() if n > 1)
    for _, _, key, content in rows:
        if content != content_of(key):
            problems.append(f"message {key} holds another message's content")
    seqs: dict[str, list[int]] = {}
    for conversation, seq, _, _ in rows:
        seqs.setdefault(conversation, []).append(seq)
    for conversation, count, last_seq in counters:
        held = sorted(seqs.get(conversation, []))
        if held != list(range(1, len(held) + 1)):
            problems.append(f"conversation {conversation}: seqs with a gap: {held}")
        if not count == last_seq == len(held):
            problems.append(
                f"conversation {conversation}: message_count {count}, last_seq {last_seq}, {len(held)} rows"
            )
    unacked = [key for key in stored if key not in acked]
    if unacked:
        figures.extra["written, never acknowledged"] = len(unacked)  # a request that died in flight: allowed
    with MnemoStore(cluster.url(database), redis_url=redis_url, cache_key_prefix=prefix, redis_timeout_ms=2000) as s:
        kept = s.get_tenant_usage(tenant_id)
        recounted = s.recount_tenant_usage(tenant_id)
        if kept != recounted:
            problems.append(f"tenant usage {kept} differs from its recount {recounted}")
        tenant = s.tenant(tenant_id)
        for conversation, _, _ in counters:
            newest = sorted(seqs.get(conversation, []))[-HISTORY_LIMIT:]
            page = tenant.get_conversation_history(conversation, limit=HISTORY_LIMIT)
            if [m.seq for m in page.messages] != newest:
                figures.stale += 1
                problems.append(f"conversation {conversation}: history {[m.seq for m in page.messages]} != {newest}")
    return problems


def assert_sound(figures: Figures, problems: list[str], *, failures_allowed: bool) -> None:
    assert figures.acknowledged > 0
    assert (figures.lost, figures.duplicated, figures.stale) == (0, 0, 0), (figures.line(), problems)
    assert problems == []
    if not failures_allowed:
        assert figures.failed == 0, figures.line()


# --- 1. a writer killed -9 -----------------------------------------------------------------------------------------


def test_writer_killed(
    tmp_path: Path, pg_cluster: PostgresCluster, fault_database: str, fault_budget: FaultBudget, figures: Figures
) -> None:
    """A writer process killed -9 at random points (and once right between commit and the Redis write-through),
    restarted each time; it sends its last unacknowledged key again first, as a client retries."""
    redis_server = RedisProcess(tmp_path)
    redis_server.start()
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    url = pg_cluster.url(fault_database)
    with MnemoStore(url) as store:
        tenant_id = str(store.create_tenant(f"writer-{uuid.uuid4().hex[:8]}").id)
        tenant = store.tenant(tenant_id)
        user = tenant.create_user()
        conversations = [str(tenant.create_conversation(user.id).id) for _ in range(fault_budget.conversations)]
    log = tmp_path / "writer.log"
    rng = random.Random()
    total = fault_budget.appends
    base = [sys.executable, "-m", "tests.fault_writer", url, redis_server.url, prefix, tenant_id, str(log)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(crash_after_commit: int = 0) -> subprocess.Popen[bytes]:
        extra = {"MNEMOSTORE_FAULTS_CRASH_AFTER_COMMIT": str(crash_after_commit)} if crash_after_commit else {}
        return subprocess.Popen([*base, str(total), *conversations], env={**env, **extra}, cwd=ROOT)

    kills = 0
    # Kills are placed by acknowledgements, not by time: a fast machine appends the whole budget in a fraction of
    # a second, and a kill after the writer finished kills nothing. Each kill lands within its share of the budget.
    share = max(4, total // (fault_budget.kills + 1))
    try:
        for round_ in range(fault_budget.kills):
            if round_ % 3 == 0:
                # The crash of issue 14's first finding: committed, not yet written through to Redis.
                writer = run(crash_after_commit=rng.randint(3, min(15, share)))
                assert writer.wait(timeout=120) == -signal.SIGKILL
            else:
                writer = run()
                target = len(parse_log(log)[1]) + rng.randint(3, share)
                deadline = time.monotonic() + 60
                while len(parse_log(log)[1]) < target and writer.poll() is None:
                    assert time.monotonic() < deadline, "the writer acknowledges nothing"
                    time.sleep(0.002)
                if writer.poll() is not None:
                    break  # it finished first: no kill to count
                writer.send_signal(signal.SIGKILL)
                writer.wait(timeout=10)
            kills += 1
        writer = run()
        assert writer.wait(timeout=300) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
        redis_server.kill()
    figures.extra["kills"] = kills

    _, acked, pending = parse_log(log)
    lines = log.read_text().splitlines()
    figures.stale = sum(1 for line in lines if line.split()[:1] in (["R"], ["C"]) and line.endswith(" stale"))
    sent = [line.split()[1] for line in lines if line.startswith("S ")]
    assert len(sent) == len(set(sent)), "a key was sent as new twice"
    figures.extra["resent after a kill"] = sum(1 for line in lines if line.startswith("P "))
    redis_server.start()  # the final check reads through a Redis again (an empty one: from the database)
    try:
        problems = check_database(
            pg_cluster,
            fault_database,
            tenant_id,
            acked,
            lambda key: conversations[int(key.split("-")[0])],
            figures,
            redis_url=redis_server.url,
            prefix=prefix,
        )
    finally:
        redis_server.kill()
    assert pending is None and len(acked) == total
    assert figures.extra["resent after a kill"] >= 1, "no kill left a request in flight: nothing was retried"
    assert_sound(figures, problems, failures_allowed=False)


# --- the HTTP load of scenarios 2 to 4 -----------------------------------------------------------------------------


@dataclass
class HttpLoad:
    """A client appending with ``Idempotency-Key`` to a few conversations and reading the history after each
    acknowledgement; a failed request (transport error, 5xx) is retried with the same key until it succeeds."""

    base_url: str
    tenant: ApiTenant
    conversations: list[str]
    figures: Figures
    timeout: float = 10.0
    acked: dict[str, int] = field(default_factory=dict)
    failed_latencies: list[float] = field(default_factory=list)
    slowest_ok: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    counter: int = 0
    replayed: int = 0

    def conversation_of(self, key: str) -> str:
        return self.conversations[int(key.split("-")[0])]

    def _request(
        self, client: httpx.Client, method: str, url: str, *, key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.tenant.headers, **({"Idempotency-Key": key} if key is not None else {})}
        while True:
            started = time.monotonic()
            try:
                response = client.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as error:
                self.statuses[type(error).__name__] += 1
            else:
                if response.status_code < 500:
                    self.slowest_ok = max(self.slowest_ok, time.monotonic() - started)
                    return response
                self.statuses[str(response.status_code)] += 1
            self.figures.failed += 1
            self.failed_latencies.append(time.monotonic() - started)
            time.sleep(0.05)

    def step(self, client: httpx.Client) -> None:
        key = f"{self.counter % len(self.conversations)}-{self.counter}"
        self.counter += 1
        conversation = self.conversation_of(key)
        body = {"role": "user", "content": content_of(key)}
        url = f"/v1/conversations/{conversation}/messages"
        response = self._request(client, "POST", url, json=body, key=key)
        assert response.status_code == 201, response.text
        seq = int(response.json()["seq"])
        if response.headers.get("Idempotent-Replayed") == "true":
            self.replayed += 1  # the first attempt was committed and its answer lost
        self.acked[key] = seq
        page = self._request(client, "GET", url, params={"limit": HISTORY_LIMIT})
        assert page.status_code == 200, page.text
        if seq not in [m["seq"] for m in page.json()["messages"]]:
            self.figures.stale += 1

    def run(self, until: Callable[[], bool]) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout) as client:
            while not until():
                self.step(client)


def setup_load(server: ServeProcess, budget: FaultBudget, figures: Figures) -> HttpLoad:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        tenant = make_tenant(client)
        user = tenant.ok("POST", "/v1/users", 201, json={})
        conversations = [
            tenant.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})["id"]
            for _ in range(budget.conversations)
        ]
    return HttpLoad(base_url=server.url, tenant=tenant, conversations=conversations, figures=figures)


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.resume()
        server.kill()


@pytest.fixture(scope="module")
def serve(
    tmp_path_factory: pytest.TempPathFactory,
    pg_cluster: PostgresCluster,
    fault_database: str,
    private_redis: RedisProcess,
) -> Iterator[ServeProcess]:
    """One server for scenarios 2 to 4 (a start costs seconds): each leaves it, Redis and PostgreSQL running."""
    server = ServeProcess(tmp_path_factory.mktemp("serve"), pg_cluster.url(fault_database), private_redis.url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def in_background(fault: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fault()
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def run_under(load: HttpLoad, fault: Callable[[], None], settle_appends: int) -> None:
    """Run the load while ``fault`` runs in the background, then ``settle_appends`` more after it is done."""
    thread, errors = in_background(fault)
    load.run(until=lambda: not thread.is_alive())
    thread.join()
    assert errors == [], errors
    target = len(load.acked) + settle_appends
    load.run(until=lambda: len(load.acked) >= target)


# --- 2. the server killed -9 ---------------------------------------------------------------------------------------


def check_load(
    load: HttpLoad,
    pg_cluster: PostgresCluster,
    fault_database: str,
    redis: RedisProcess,
    figures: Figures,
    *,
    failures_allowed: bool,
) -> None:
    """The database check of an HTTP load's acknowledged writes, then the verdict on the figures."""
    problems = check_database(
        pg_cluster, fault_database, load.tenant.id, load.acked, load.conversation_of, figures, redis_url=redis.url
    )
    assert_sound(figures, problems, failures_allowed=failures_allowed)


def test_server_killed(
    serve: ServeProcess,
    pg_cluster: PostgresCluster,
    fault_database: str,
    private_redis: RedisProcess,
    fault_budget: FaultBudget,
    figures: Figures,
) -> None:
    """``mnemostore serve`` killed -9 mid-load and started again; the client retries with the same key."""
    load = setup_load(serve, fault_budget, figures)
    rng = random.Random()

    def kill_and_restart() -> None:
        for _ in range(fault_budget.server_kills):
            time.sleep(rng.uniform(0.3, 1.2))
            serve.kill()
            serve.start()

    run_under(load, kill_and_restart, settle_appends=20)
    figures.extra["kills"] = fault_budget.server_kills
    figures.extra["answered as replays"] = load.replayed
    figures.extra["failures"] = dict(load.statuses)
    check_load(load, pg_cluster, fault_database, private_redis, figures, failures_allowed=True)


# --- 3. Redis killed, frozen, restarted ----------------------------------------------------------------------------


def test_redis_faults(
    serve: ServeProcess,
    pg_cluster: PostgresCluster,
    fault_database: str,
    private_redis: RedisProcess,
    fault_budget: FaultBudget,
    figures: Figures,
) -> None:
    """Redis killed -9 and restarted empty, then frozen (SIGSTOP) for longer than every Redis timeout and thawed:
    no request fails and no read is stale, during the faults or after (degraded mode reads the database)."""
    load = setup_load(serve, fault_budget, figures)

    def redis_faults() -> None:
        for _ in range(fault_budget.outages):
            time.sleep(0.5)
            private_redis.kill()
            time.sleep(fault_budget.outage_seconds)
            private_redis.start()
            time.sleep(0.5)
            private_redis.pause()
            time.sleep(fault_budget.outage_seconds)
            private_redis.resume()
        time.sleep(0.5)

    run_under(load, redis_faults, settle_appends=30)
    figures.extra["rounds"] = fault_budget.outages
    figures.extra["slowest request s"] = round(load.slowest_ok, 2)
    check_load(load, pg_cluster, fault_database, private_redis, figures, failures_allowed=False)


def test_hot_path_raises_backend_unavailable_while_postgres_is_down(
    pg_cluster: PostgresCluster, fault_database: str
) -> None:
    """The append and history routines on PostgreSQL say BackendUnavailable (the service's 503) when the pool cannot
    connect, as every other path does; they raised SQLAlchemy's OperationalError (a 500) before."""
    with MnemoStore(pg_cluster.url(fault_database)) as store:
        tenant = store.tenant(store.create_tenant(f"down-{uuid.uuid4().hex[:8]}").id)
        conversation = tenant.create_conversation(tenant.create_user().id)
        tenant.add_message(conversation.id, role="user", content="before", idempotency_key="k1")
        pg_cluster.stop_immediately()
        try:
            for _ in range(2):  # the pooled connection found dead, then no connection at all
                with pytest.raises(BackendUnavailable):
                    tenant.add_message(conversation.id, role="user", content="during", idempotency_key="k2")
                with pytest.raises(BackendUnavailable):
                    tenant.get_conversation_history(conversation.id)
        finally:
            pg_cluster.start()
        tenant.add_message(conversation.id, role="user", content="during", idempotency_key="k2")
        assert [m.content for m in tenant.get_conversation_history(conversation.id).messages] == ["before", "during"]


# --- 4. PostgreSQL stopped and restarted ---------------------------------------------------------------------------


def test_postgres_stopped(
    serve: ServeProcess,
    pg_cluster: PostgresCluster,
    fault_database: str,
    private_redis: RedisProcess,
    fault_budget: FaultBudget,
    figures: Figures,
) -> None:
    """PostgreSQL stopped (``-m immediate``) mid-load and started again: requests fail fast with 503 meanwhile,
    nothing acknowledged is lost, and the same server process recovers."""
    load = setup_load(serve, fault_budget, figures)
    server_pid = serve.proc.pid if serve.proc is not None else None

    def outages() -> None:
        for _ in range(fault_budget.outages):
            time.sleep(0.5)
            pg_cluster.stop_immediately()
            time.sleep(fault_budget.outage_seconds)
            pg_cluster.start()
        time.sleep(0.5)

    try:
        run_under(load, outages, settle_appends=30)
    finally:
        if not pg_cluster.running():
            pg_cluster.start()
    slowest_failure = max(load.failed_latencies, default=0.0)
    figures.extra["outages"] = fault_budget.outages
    figures.extra["failures"] = dict(load.statuses)
    figures.extra["slowest failure s"] = round(slowest_failure, 2)
    check_load(load, pg_cluster, fault_database, private_redis, figures, failures_allowed=True)
    assert serve.proc is not None and serve.proc.pid == server_pid and serve.proc.poll() is None, "no restart"
    assert load.figures.failed > 0, "the outage was not seen"
    assert set(load.statuses) == {"503"}, load.statuses  # the service's answer, fast: no 500, no hung request
    assert slowest_failure < 5.0, slowest_failure
