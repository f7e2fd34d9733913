"""Citus fixtures: a real Citus 13 cluster (a coordinator and two workers) on local ports, never a fake.

``CitusCluster`` makes three PostgreSQL 15 nodes with Citus preloaded, each its own data directory under a
temporary folder and its own port (25432-25434 when free, else three other free ports), started as the
``postgres`` user (``initdb`` refuses root). One ``initdb`` is copied for the other two nodes, and the nodes run
without durability (``fsync=off``): they are thrown away at the end of the session, so start-up takes a few
seconds. ``wal_level=logical`` lets Citus move shards without blocking writes.

Citus keeps its metadata per database: ``create_database`` makes a database of the same name on every node,
creates the extension in each, and registers the coordinator and the workers in it, so a test database is a
cluster of its own, as ``tests/fix_db.py``'s scratch databases are on one server.

Citus is built from the vendored source (``MNEMOSTORE_CITUS_BUILD``, default
``../shared/vendor/citus/build-citus.sh`` next to the repository) when ``citus.so`` is missing and the tests run
as root; otherwise the Citus cases are skipped, saying why, unless ``--require-citus`` (CI sets it) makes that a
failure.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support import port_is_free

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CITUS_SO = Path("/usr/lib/postgresql/15/lib/citus.so")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUILD = REPO.parent / "shared" / "vendor" / "citus" / "build-citus.sh"
PORTS = (25432, 25433, 25434)  # coordinator, worker 1, worker 2 (others when taken)
START_BOUND = 60.0
NODE_SETTINGS = {
    "shared_preload_libraries": "'citus'",
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "120",
    "shared_buffers": "32MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "logical",  # non-blocking shard moves (logical replication)
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "log_min_messages": "warning",
    # Citus's deadlock detection and maintenance daemon run on each node: keep their polling light.
    "citus.distributed_deadlock_detection_factor": "2",
}


# The modules whose tests run on the Citus cluster too (the ``citus`` backend of tests/fix_db.py); the tests of
# every other module run on SQLite and PostgreSQL only. Their behaviour is the store's, whatever the engine: these
# cover the store's operations end to end (test_store*, test_hot_path, test_search*), cross-tenant isolation by
# the database itself (test_isolation_postgres), migrations, and Citus's own promises (test_citus).
CITUS_MODULES = frozenset(
    {
        "test_citus.py",
        "test_hot_path.py",
        "test_isolation_postgres.py",
        "test_migrations.py",
        "test_search.py",
        "test_search_async.py",
        "test_store.py",
        "test_store_async.py",
    }
)
# Tests of those modules left out on Citus ("module::test", fnmatch patterns), each with the reason; the first
# pattern that matches gives it.
_ONE_REVISION = (
    "checks one revision's own effect, below 0013 (nothing is distributed yet): the same statements as on "
    "PostgreSQL; a cluster database migrated up and down costs 5-17 s"
)
CITUS_LEFT_OUT: dict[str, str] = {
    "test_isolation_postgres.py::test_big_tenant_is_big": "part (b), PostgreSQL's query plans: on Citus the plans "
    "are Citus's (tests/test_citus.py checks that the store's statements route to one shard)",
    "test_isolation_postgres.py::test_*plan*": "part (b), PostgreSQL's index choices: on Citus the coordinator's "
    "plan is a Custom Scan (tests/test_citus.py checks that the store's statements route to one shard, where "
    "the worker's PostgreSQL plans them as here)",
    "test_isolation_postgres.py::test_history_reads_go_through_the_one_call_routine": "part (b), on its "
    "tens-of-thousands-row fixture; tests/test_citus.py checks the routine's delegation to the tenant's worker",
    "test_migrations.py::test_0*": _ONE_REVISION,
    "test_migrations.py::test_upgrade_twice_is_a_no_op": "Alembic's bookkeeping: at head nothing runs, on any "
    "engine (tests/test_citus.py upgrades a distributed database again)",
    "test_migrations.py::test_migration_status_before_and_after": "tests/test_citus.py reads the status of a "
    "cluster database before and after distributing it",
    "test_migrations.py::test_models_and_migrations_agree": "test_upgrade_downgrade_upgrade[citus] ends with the "
    "same comparison, on the distributed schema",
    "test_migrations.py::test_hot_path_routines_come_and_go_with_0007": _ONE_REVISION,
    "test_migrations.py::test_admin_role_policies_come_and_go_with_0008": _ONE_REVISION,
    "test_migrations.py::test_active_conversations_index_is_partial": _ONE_REVISION,
    "test_migrations.py::test_*store_migrate*": "the store's migrate and rollback call the same Alembic commands "
    "as test_upgrade_downgrade_upgrade[citus], which runs them on the cluster (14 s each there)",
    "test_migrations.py::test_*unknown_revision*": "Alembic refuses an unknown revision before any SQL runs",
    "test_migrations.py::test_*unmigrated*": "the schema check reads alembic_version, a plain table on the "
    "coordinator: as on PostgreSQL",
    "test_migrations.py::test_store_on_older_schema_refuses": "the schema check reads alembic_version, a plain "
    "table on the coordinator: as on PostgreSQL",
    "test_migrations.py::test_store_whose_schema_disappears_raises_schema_error": "drops the tables behind the "
    "store's back: the error mapping is the driver's, as on PostgreSQL",
}


def left_out_reason(item: pytest.Item) -> str | None:
    """Why the ``citus`` case of ``item`` is left out, or None when it runs."""
    name = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
    return next((reason for pattern, reason in CITUS_LEFT_OUT.items() if fnmatch.fnmatchcase(name, pattern)), None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--require-citus", action="store_true", help="fail, don't skip, without a Citus cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the ``citus`` cases of CITUS_MODULES only (skipping, with the reason, those of CITUS_LEFT_OUT)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("backend") != "citus":
            kept.append(item)
            continue
        if item.path.name not in CITUS_MODULES:
            dropped.append(item)
            continue
        reason = left_out_reason(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"not on Citus: {reason}"))
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _free_ports() -> tuple[int, int, int]:
    if all(port_is_free(p) for p in PORTS):
        return PORTS
    found: list[int] = []
    for port in range(25440, 25600):
        if port_is_free(port):
            found.append(port)
            if len(found) == 3:
                return found[0], found[1], found[2]
    raise RuntimeError("no three free ports in 25432-25600 for the Citus cluster")


def _as_postgres(*args: str) -> list[str]:
    """The command, run as the ``postgres`` user when we are root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


def citus_missing_reason(build: bool) -> str | None:
    """None when Citus is installed (built now from the vendored source if ``build`` and we may); else why not."""
    if CITUS_SO.exists():
        return None
    if not (PG_BIN / "initdb").exists():
        return f"the Citus tests need PostgreSQL 15's server binaries ({PG_BIN})"
    script = Path(os.environ.get("MNEMOSTORE_CITUS_BUILD", DEFAULT_BUILD))
    if not build or os.geteuid() != 0 or not script.exists():
        return (
            f"Citus is not installed ({CITUS_SO} missing): run `bash {script}` as root "
            "(builds Citus 13.2.2 from the vendored source into PostgreSQL 15, about 4 minutes)"
        )
    built = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if built.returncode != 0 or not CITUS_SO.exists():
        return f"building Citus with {script} failed: {built.stdout[-1500:]} {built.stderr[-1500:]}"
    return None


class CitusCluster:
    """A coordinator and two workers, each a PostgreSQL 15 with Citus, in ``workdir`` (owned by ``postgres``)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = _free_ports()
        self.running: list[int] = []

    @property
    def coordinator(self) -> int:
        return self.ports[0]

    @property
    def workers(self) -> tuple[int, int]:
        return self.ports[1], self.ports[2]

    def dsn(self, port: int | None = None, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.coordinator}/{database}"

    def _node_dir(self, port: int) -> Path:
        return self.workdir / f"node-{port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        template = self.workdir / "template"
        subprocess.run(
            _as_postgres(str(PG_BIN / "initdb"), "-D", str(template), "-U", "postgres", "-A", "trust", "-E", "UTF8"),
            capture_output=True,
            check=True,
            timeout=START_BOUND,
        )
        with (template / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in NODE_SETTINGS.items())
        for port in self.ports:
            subprocess.run(
                _as_postgres("cp", "-a", str(template), str(self._node_dir(port))), check=True, timeout=START_BOUND
            )
        for port in self.ports:
            node = self._node_dir(port)
            subprocess.run(
                _as_postgres(
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(node),
                    "-o",
                    f"-p {port} -k {node}",
                    "-l",
                    str(node / "server.log"),
                    "-w",
                    "-t",
                    str(int(START_BOUND)),
                    "start",
                ),
                capture_output=True,
                check=True,
                timeout=START_BOUND + 5,
            )
            self.running.append(port)

    def stop(self) -> None:
        for port in list(self.running):
            subprocess.run(
                _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self._node_dir(port)), "-m", "immediate", "stop"),
                capture_output=True,
                check=False,
                timeout=START_BOUND,
            )
            self.running.remove(port)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- databases ------------------------------------------------------------------------------------------------

    def create_database(self) -> str:
        """A new database on every node, joined into a cluster (extension, coordinator, both workers); its URL."""
        name = f"mnemostore_citus_{uuid.uuid4().hex[:12]}"
        for port in self.ports:
            with psycopg.connect(self.dsn(port), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            with psycopg.connect(self.dsn(port, name), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION citus")
        with psycopg.connect(self.dsn(database=name), autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", [self.coordinator])
            for port in self.workers:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", [port])
        url = make_url(self.dsn(database=name).replace("postgresql://", "postgresql+psycopg://", 1))
        return url.render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        for port in self.ports:
            with psycopg.connect(self.dsn(port), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cluster(request: pytest.FixtureRequest, workdir: Path) -> CitusCluster:
    """A started cluster, or a skip (Citus not installed and not buildable here) / failure (``--require-citus``)."""
    required = bool(request.config.getoption("--require-citus"))
    reason = citus_missing_reason(build=True)
    if reason is not None:
        if required:
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = CitusCluster(workdir)
    try:
        cluster.start()
    except (OSError, subprocess.SubprocessError) as error:
        cluster.stop()
        detail = getattr(error, "stderr", b"") or b""
        pytest.fail(f"the Citus cluster did not start within {START_BOUND:g} s: {error} {detail!r}")
    except BaseException:
        cluster.stop()  # never leave nodes behind
        raise
    return cluster


@pytest.fixture(scope="session")
def citus_cluster(request: pytest.FixtureRequest) -> Iterator[CitusCluster]:
    """The session's cluster: started on first use, stopped and removed at the end of the session (its folder is
    not under pytest's temporary folder, which only root may enter)."""
    cluster = start_cluster(request, Path(tempfile.mkdtemp(prefix="mnemostore-citus-")))
    try:
        yield cluster
    finally:
        cluster.stop()
