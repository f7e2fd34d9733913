"""Fault-injection fixtures: private servers to kill, and the figures each fault test prints.

The shared PostgreSQL (5432) and Redis (6379) are never touched: ``pg_cluster`` is a PostgreSQL 15 cluster of the
session's own (``initdb`` into a temporary folder, trust authentication, a free port), ``RedisProcess``
(tests/fix_redis.py) a throw-away ``redis-server``, and ``ServeProcess`` a ``mnemostore serve`` subprocess on
them. Each can be killed (-9), frozen (SIGSTOP/SIGCONT), stopped and restarted at will.

The suite is marked ``faults``. By default it runs short (a few kills, a little load: CI's run); ``--faults-long``
or ``MNEMOSTORE_FAULTS=long`` runs the long version. Every scenario records a figures line (acknowledged, lost,
duplicated, failed requests, stale reads), printed in the terminal summary so that CI's output shows them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from mnemostore import Settings
from mnemostore.ops import migrate
from tests.fix_api import ADMIN_KEY
from tests.fix_redis import free_port

PG_BIN = Path(os.environ.get("MNEMOSTORE_FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--faults-long",
        action="store_true",
        default=os.environ.get("MNEMOSTORE_FAULTS", "").lower() == "long",
        help="run the long fault-injection suite (more kills, more load); also MNEMOSTORE_FAULTS=long",
    )


@dataclass(frozen=True)
class FaultBudget:
    """How hard a run pushes: the short one is CI's, the long one is run on demand."""

    long: bool
    kills: int  # kills of the writer process
    server_kills: int  # kills of the server (each restart takes seconds: the import of the service)
    outages: int  # rounds of Redis faults (killed, frozen), PostgreSQL stops
    conversations: int
    appends: int  # acknowledged appends the writer reaches in the end
    outage_seconds: float  # how long Redis stays frozen, PostgreSQL stopped


@pytest.fixture(scope="session")
def fault_budget(request: pytest.FixtureRequest) -> FaultBudget:
    if request.config.getoption("--faults-long"):
        return FaultBudget(
            long=True, kills=12, server_kills=8, outages=5, conversations=6, appends=1500, outage_seconds=4.0
        )
    return FaultBudget(long=False, kills=3, server_kills=2, outages=1, conversations=3, appends=120, outage_seconds=1.5)


@dataclass
class Figures:
    """What one scenario saw; ``lost``, ``duplicated`` and ``stale`` must be zero."""

    scenario: str
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    failed: int = 0  # requests that failed (transport errors, 5xx), each then retried with the same key
    stale: int = 0  # reads after an acknowledgement that did not contain it
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in self.extra.items())
        return (
            f"{self.scenario}: acknowledged {self.acknowledged}, lost {self.lost}, duplicated {self.duplicated}, "
            f"failed requests {self.failed}, stale reads {self.stale}{extra}"
        )


_FIGURES_KEY = pytest.StashKey[list[Figures]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest, fault_budget: FaultBudget) -> Iterator[Figures]:
    """The test's figures, printed now (with ``-s``) and in the terminal summary."""
    name = request.node.name.removeprefix("test_") + (" [long]" if fault_budget.long else " [short]")
    result = Figures(scenario=name)
    yield result
    print("\n" + result.line())
    request.config.stash.setdefault(_FIGURES_KEY, []).append(result)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    collected = config.stash.get(_FIGURES_KEY, [])
    if collected:
        terminalreporter.section("fault injection figures")
        for result in collected:
            terminalreporter.write_line(result.line())


class PostgresCluster:
    """A private PostgreSQL 15 cluster: ``initdb`` into a folder of its own, served on a free port.

    PostgreSQL refuses to run as root: a root test run runs the server binaries as the ``postgres`` user, in a
    folder under /tmp that user owns (pytest's temporary folders are root's only).
    """

    def __init__(self, required: bool) -> None:
        if not (PG_BIN / "initdb").exists():
            missing = f"PostgreSQL server binaries not found in {PG_BIN} (set MNEMOSTORE_FAULTS_PG_BIN)"
            pytest.fail(missing) if required else pytest.skip(missing)
        self.base = Path(tempfile.mkdtemp(prefix="mnsf-"))  # short: a socket path is at most 107 bytes
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root without a postgres user to run the private PostgreSQL as")
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = free_port()
        initdb = [*self.as_user, str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        try:
            subprocess.run([*initdb, "-E", "UTF8"], check=True, capture_output=True)
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args], check=True, capture_output=True
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=40"
        self._ctl("-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop_immediately(self) -> None:
        """``pg_ctl stop -m immediate``: every backend dies, nothing is flushed cleanly (recovery on start)."""
        self._ctl("-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def running(self) -> bool:
        status = [*self.as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(status, capture_output=True).returncode == 0

    def create_database(self) -> str:
        name = f"faults_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.url(name)
        migrate.upgrade(Settings(database_url=url))
        return name


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> Iterator[PostgresCluster]:
    """Skipped without the server binaries, unless ``--require-postgres`` (CI) makes that a failure."""
    cluster = PostgresCluster(required=bool(request.config.getoption("--require-postgres")))
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.running():
            cluster.stop_immediately()
        shutil.rmtree(cluster.base, ignore_errors=True)


@pytest.fixture(scope="session")
def fault_database(pg_cluster: PostgresCluster) -> str:
    """The name of a migrated database in the private cluster, shared by the fault tests (a tenant each)."""
    return pg_cluster.create_database()


def _mnemostore() -> list[str]:
    script = Path(sys.executable).with_name("mnemostore")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from mnemostore.cli.main import main; main()"]


class ServeProcess:
    """``mnemostore serve`` as a subprocess on the private servers, to kill -9 and start again (same port)."""

    def __init__(self, workdir: Path, database_url: str, redis_url: str | None, **env: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.database_url = database_url
        self.redis_url = redis_url
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("MNEMOSTORE_") and k != "DATABASE_URL"}
        env = {
            **keep,
            "MNEMOSTORE_ADMIN_API_KEY": ADMIN_KEY,
            "MNEMOSTORE_EMBEDDER": "none",
            "MNEMOSTORE_SERVER_INDEXER": "false",
            "MNEMOSTORE_RECENT_CONTEXT_SIZE": "20",
            "MNEMOSTORE_POOL_SIZE": "2",
            "MNEMOSTORE_MAX_OVERFLOW": "2",
            "MNEMOSTORE_POOL_TIMEOUT": "3",
            "MNEMOSTORE_CONNECT_TIMEOUT": "2",
            "HOME": str(self.workdir),
            **({"MNEMOSTORE_REDIS_URL": self.redis_url} if self.redis_url else {}),
            **self.env,
        }
        command = [*_mnemostore(), "--database-url", self.database_url, "serve", "--port", str(self.port)]
        self.starts += 1
        log = (self.workdir / f"serve-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(command, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"mnemostore serve exited: see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError("mnemostore serve did not come up in 60 s")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
