"""Redis Cluster fixtures: six local ``redis-server`` nodes (three primaries, three replicas), never a fake.

``RedisClusterProcess`` starts the nodes with ``--cluster-enabled yes`` on free ports (a node's cluster bus is its
port + 10000, so the ports stay below 55536), in a temporary folder, without persistence, joins them with
``redis-cli --cluster create … --cluster-replicas 1`` and waits for ``cluster_state:ok``. It can kill, pause and
restart all of them (the degraded-mode tests treat the cluster as one server), and kill one primary and report its
replica's promotion (the failover tests).

``redis_cluster`` is the session's cluster, shared like the single server of tests/fix_redis.py (each test uses
fresh tenants under the session's key prefix) and never disturbed; tests that kill or pause nodes start their own.
Without ``redis-server`` or ``redis-cli`` the cluster cases are skipped, unless ``--require-redis`` (or ``CI``)
makes that a failure, as a cluster that cannot start is.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support import port_is_free

NODES = 6
BUS_OFFSET = 10_000  # Redis Cluster's bus port is the client port + 10000
PORTS = range(30_000, 31_000)  # candidates for the first port (the bus ports are 40000-41005)
START_BOUND = 60.0  # seconds a start may take before it is a failure (a bound, not a margin)


def free_ports() -> list[int]:
    """Six consecutive free ports whose bus ports are free too (another run may hold some: start somewhere random)."""
    candidates = list(PORTS)[:: NODES + 1]
    random.shuffle(candidates)
    for first in candidates:
        ports = list(range(first, first + NODES))
        if all(port_is_free(p) and port_is_free(p + BUS_OFFSET) for p in ports):
            return ports
    raise RuntimeError(f"no {NODES} consecutive free ports (and bus ports) in {PORTS}")


def tools_or_skip(request: pytest.FixtureRequest) -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        reason = "redis-server and redis-cli are needed for the Redis Cluster tests (apt install redis-server)"
        if request.config.getoption("--require-redis") or os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return server, cli


class RedisClusterProcess:
    """Six redis-server nodes in cluster mode; ``start`` creates the cluster (empty), ``kill`` ends every node.

    ``node_timeout_ms`` is the cluster's ``cluster-node-timeout``: how long a primary may be unreachable before its
    replica takes over (a failover takes about that, plus an election).
    """

    def __init__(self, workdir: Path, server: str, cli: str, *, node_timeout_ms: int = 5000) -> None:
        self.workdir = workdir
        self.server = server
        self.cli = cli
        self.node_timeout_ms = node_timeout_ms
        self.ports = free_ports()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.paused = False

    @property
    def url(self) -> str:
        """The store's URL: two of the nodes are enough to find the others."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2])

    # -- whole cluster ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the six nodes empty (a new cluster on the same ports) and wait for ``cluster_state:ok``."""
        assert not self.procs, "already running"
        for port in self.ports:
            self._start_node(port, fresh=True)
        for port in self.ports:
            self._wait_answers(port)
        created = subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=START_BOUND,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]!r} {created.stderr!r}")
        self.wait_ok()

    def kill(self) -> None:
        """kill -9 every node (their data and cluster state go with them: no persistence)."""
        self.resume()
        for port in list(self.procs):
            self.kill_node(port)

    def pause(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            for proc in self.procs.values():
                proc.send_signal(signal.SIGCONT)
            self.paused = False

    def wait_ok(self, bound: float = START_BOUND) -> None:
        """Until every running node says ``cluster_state:ok`` and agrees on three primaries that serve slots."""
        deadline = time.monotonic() + bound
        last: Any = None
        while time.monotonic() < deadline:
            try:
                states = {port: self.state(port) for port in self.procs}
                primaries = {port: len(self.primaries(port)) for port in self.procs}
                last = (states, primaries)
                if set(states.values()) == {"ok"} and set(primaries.values()) == {3}:
                    return
            except (redis.RedisError, KeyError) as error:
                last = error
            time.sleep(0.05)
        raise RuntimeError(f"the cluster on {self.ports} is not ok after {bound:g} s: {last}")

    def stop(self) -> None:
        self.kill()

    # -- nodes --------------------------------------------------------------------------------------------------

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node (no redirections followed)."""
        return redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)

    def state(self, port: int) -> str:
        """``cluster_state`` as node ``port`` sees it: ``ok`` when every slot is served."""
        info = str(self.node(port).execute_command("CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in info.split()).get("cluster_state", "?")

    def primaries(self, port: int | None = None) -> dict[int, str]:
        """Port -> node id of the primaries that serve slots, as node ``port`` (any running one) sees them."""
        asked = self.node(port if port is not None else next(iter(self.procs)))
        found: dict[int, str] = {}
        for line in str(asked.execute_command("CLUSTER", "NODES")).splitlines():
            node_id, address, flags, *_rest = line.split()
            slots = line.split()[8:]
            if "master" in flags and "fail" not in flags and slots:
                found[int(address.split("@")[0].rsplit(":", 1)[1])] = node_id
        return found

    def primary_of(self, key: str) -> int:
        """The port of the primary that serves ``key``'s slot."""
        asked = self.node(next(iter(self.procs)))
        slot = int(asked.execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, primary, *_replicas in asked.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return int(primary[1])
        raise RuntimeError(f"slot {slot} of {key!r} is not served")

    def replica_of(self, primary: int) -> int:
        """The port of ``primary``'s replica."""
        asked = self.node(primary)
        info = asked.info("replication")
        return int(info["slave0"]["port"])

    def wait_replicated(self, primary: int, bound: float = START_BOUND) -> None:
        """Until ``primary``'s replica has applied everything the primary has written so far."""
        deadline = time.monotonic() + bound
        written = self.node(primary).info("replication")["master_repl_offset"]
        replica = self.node(self.replica_of(primary))
        while time.monotonic() < deadline:
            if replica.info("replication").get("slave_repl_offset", -1) >= written:
                return
            time.sleep(0.02)
        raise RuntimeError(f"the replica of {primary} did not catch up within {bound:g} s")

    def kill_node(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=10)

    def pause_node(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGSTOP)

    def resume_node(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGCONT)

    def wait_promoted(self, port: int, bound: float = START_BOUND) -> None:
        """Until node ``port`` is a primary and the cluster serves every slot again (a failover's end)."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            try:
                if self.node(port).execute_command("ROLE")[0] == "master":
                    break
            except redis.RedisError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"node {port} was not promoted within {bound:g} s")
        self.wait_ok(max(1.0, deadline - time.monotonic()))

    def _start_node(self, port: int, *, fresh: bool) -> None:
        folder = self.workdir / f"node-{port}"
        if fresh and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        args = [
            self.server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # A replica may take over however long it was cut off (a paused replica is the failover tests' lever).
            "--cluster-replica-validity-factor",
            "0",
            # A replica's first full sync starts at once (not after the default 5 s wait for other replicas).
            "--repl-diskless-sync-delay",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--logfile",
            str(folder / "redis.log"),
        ]
        self.procs[port] = subprocess.Popen(args, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _wait_answers(self, port: int) -> None:
        proc = self.procs[port]
        deadline = time.monotonic() + START_BOUND
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if int(client.info("server")["process_id"]) == proc.pid:
                    return
                break  # another run's server holds the port
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {port} did not start (is the port taken?)")


def start_cluster(request: pytest.FixtureRequest, workdir: Path, **options: Any) -> RedisClusterProcess:
    """A started cluster, or a skip (no redis-server) / failure (it would not start)."""
    server, cli = tools_or_skip(request)
    cluster = RedisClusterProcess(workdir, server, cli, **options)
    for attempt in range(3):  # another run may take a port between the check and the start: move elsewhere
        try:
            cluster.start()
            return cluster
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            cluster.stop()
            if attempt == 2:
                pytest.fail(f"the Redis Cluster fixture could not start: {error}")
            cluster.ports = free_ports()
        except BaseException:
            cluster.stop()  # never leave nodes behind
            raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def redis_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisClusterProcess]:
    """The session's cluster: shared, never killed or paused."""
    cluster = start_cluster(request, tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisClusterProcess) -> str:
    return redis_cluster.url


@pytest.fixture(scope="session")
def spare_redis_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisClusterProcess]:
    """A second cluster of the session, for the tests that kill or pause all of it (``disposable_redis_cluster``)."""
    cluster = start_cluster(request, tmp_path_factory.mktemp("redis-cluster-spare"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def disposable_redis_cluster(spare_redis_cluster: RedisClusterProcess) -> Iterator[RedisClusterProcess]:
    """The spare cluster, running and not paused: a test may kill, pause and restart it (a restart is empty)."""
    if not spare_redis_cluster.procs:
        spare_redis_cluster.start()
    yield spare_redis_cluster
    spare_redis_cluster.resume()
