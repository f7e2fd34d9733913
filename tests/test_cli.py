"""The ``mnemostore`` command line, run in-process with Typer's CliRunner on SQLite and PostgreSQL.

Each test gets a brand-new, un-migrated database (``empty_database_url`` from tests/fix_db.py, parametrised over
both backends). One test runs the installed ``mnemostore`` script in a subprocess, end to end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from mnemostore import MnemoStore
from mnemostore.cli._shared import missing_extra_message
from mnemostore.cli.main import app
from mnemostore.ops import migrate
from tests.fix_db import PostgresServer

HEAD = migrate.head_revision()


def run(url: str | None, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    prefix = ["--database-url", url] if url is not None else []
    return CliRunner().invoke(app, [*prefix, *args], input=input, env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def assert_error_line(result: Result, *fragments: str) -> None:
    """Exit status 1 and exactly one ``error: …`` line on stderr; no traceback anywhere."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


# -- help -----------------------------------------------------------------------------------------------------


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    # Typer vendors its own copy of click, so walk the tree by shape rather than by click's classes.
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_every_command_has_help() -> None:
    commands = _commands(typer.main.get_command(app))
    names = {" ".join(path) for path, _ in commands}
    assert {"init", "demo", "db upgrade", "db status", "db rollback", "db history"} <= names
    assert {"tenant create", "tenant list", "tenant usage", "tenant set-quota", "tenant create-key"} <= names
    for path, command in commands:
        assert command.help, f"`mnemostore {' '.join(path)}` has no help text"
        result = ok(run(None, *path, "--help"))
        assert "Usage" in result.stdout


# -- errors without a database --------------------------------------------------------------------------------


def test_unsupported_url_is_one_error_line() -> None:
    assert_error_line(run("ftp://example.com/db", "db", "status"), "scheme 'ftp'")


def test_unreachable_server_is_one_error_line() -> None:
    result = run("postgresql://nobody:s3cret@127.0.0.1:1/nothing", "tenant", "list")
    assert_error_line(result, "cannot")
    assert "s3cret" not in result.output


def test_missing_postgres_extra_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails like an absent package
    assert_error_line(run("postgresql://u@127.0.0.1:1/db", "db", "status"), "pip install 'mnemostore[postgres]'")


def test_invalid_environment_setting_is_one_error_line(tmp_path: Path) -> None:
    result = run(f"sqlite:///{tmp_path / 'x.db'}", "db", "status", env={"MNEMOSTORE_POOL_SIZE": "many"})
    assert_error_line(result, "pool_size")


def test_missing_extra_hint_names_the_extra() -> None:
    assert "mnemostore[redis]" in (missing_extra_message(ModuleNotFoundError("no redis", name="redis")) or "")
    offline_docs = ModuleNotFoundError("no fastapi_offline", name="fastapi_offline")
    assert "mnemostore[server]" in (missing_extra_message(offline_docs) or "")
    assert missing_extra_message(ModuleNotFoundError("no foo", name="foo")) is None


# -- database selection ---------------------------------------------------------------------------------------


def test_database_url_from_environment_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = tmp_path / "nested" / "from-env.db"
    ok(run(None, "init", env={"MNEMOSTORE_DATABASE_URL": f"sqlite:///{from_env}"}))
    assert from_env.exists()

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNEMOSTORE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = ok(run(None, "init"))
    assert "mnemostore.db" in result.stdout
    assert (tmp_path / "mnemostore.db").exists()


# -- schema ---------------------------------------------------------------------------------------------------


def test_init_and_db_commands(empty_database_url: str) -> None:
    url = empty_database_url

    if url.startswith("sqlite"):  # no file yet: reading commands say so and create none
        for command in (["db", "status"], ["db", "history"]):
            assert_error_line(run(url, *command), "there is no database at", "mnemostore init")
        assert not Path(url.removeprefix("sqlite:///")).exists()
    else:  # an empty PostgreSQL database: nothing applied yet
        status = run(url, "db", "status")
        assert status.exit_code == 1, status.output
        assert "nothing" in status.stdout and HEAD in status.stdout and "mnemostore db upgrade" in status.stdout
        history = ok(run(url, "db", "history"))
        assert HEAD in history.stdout and "pending" in history.stdout

    first = ok(run(url, "init"))
    assert HEAD in first.stdout and "upgraded" in first.stdout
    assert "already up to date" in ok(run(url, "init")).stdout
    assert "Up to date" in ok(run(url, "db", "status")).stdout
    assert "current" in ok(run(url, "db", "history")).stdout

    declined = run(url, "db", "rollback", "base", input="n\n")
    assert declined.exit_code == 1
    assert "Up to date" in ok(run(url, "db", "status")).stdout

    rolled = ok(run(url, "db", "rollback", "base", "--yes"))
    assert f"from {HEAD}" in rolled.stdout
    assert run(url, "db", "status").exit_code == 1
    assert_error_line(run(url, "tenant", "list"), "mnemostore db upgrade")

    assert f"to {HEAD}" in ok(run(url, "db", "upgrade")).stdout
    assert "nothing to do" in ok(run(url, "db", "upgrade", "head")).stdout
    assert_error_line(run(url, "db", "upgrade", "9999"), "9999")
    assert_error_line(run(url, "db", "rollback", "9999", "--yes"), "9999")


# -- tenants --------------------------------------------------------------------------------------------------


def test_tenant_commands(empty_database_url: str) -> None:
    url = empty_database_url
    ok(run(url, "init"))
    assert "No tenants yet" in ok(run(url, "tenant", "list")).stdout

    created = ok(
        run(url, "tenant", "create", "acme", "--plan", "pro", "--max-users", "2", "--max-storage-bytes", "1MB")
    )
    tenant_id = uuid.UUID(created.stdout.strip())  # stdout is the id alone, for scripts
    assert "acme" in created.stderr
    assert_error_line(run(url, "tenant", "create", "acme"), "already exists")

    listing = ok(run(url, "tenant", "list"))
    assert str(tenant_id) in listing.stdout and "acme" in listing.stdout and "pro" in listing.stdout

    for ref in ("acme", str(tenant_id)):
        usage = ok(run(url, "tenant", "usage", ref))
        assert str(tenant_id) in usage.stdout and "messages" in usage.stdout and "unlimited" in usage.stdout

    changed = ok(run(url, "tenant", "set-quota", "acme", "--max-messages", "5", "--max-users", "unlimited"))
    assert "messages 5" in changed.stdout
    with MnemoStore(url) as store:
        quotas = store.get_tenant_or_raise(tenant_id).quotas
    assert (quotas.max_users, quotas.max_messages, quotas.max_storage_bytes) == (None, 5, 1_000_000)
    assert_error_line(run(url, "tenant", "set-quota", "acme"), "nothing to change")
    assert run(url, "tenant", "set-quota", "acme", "--max-users", "lots").exit_code == 2  # a usage error

    key = ok(run(url, "tenant", "create-key", str(tenant_id), "ci-bot", "--read-only"))
    secret = key.stdout.strip()
    assert "cannot be shown again" in key.stderr and secret not in key.stderr
    with MnemoStore(url) as store:
        found = store.authenticate(secret)
    assert found is not None and found.tenant_id == tenant_id and found.read_only and found.name == "ci-bot"


def test_unknown_tenant_is_one_error_line(empty_database_url: str) -> None:
    ok(run(empty_database_url, "init"))
    for args in (("usage", "nobody"), ("set-quota", "nobody", "--max-users", "3"), ("create-key", "nobody", "k")):
        assert_error_line(run(empty_database_url, "tenant", *args), "tenant 'nobody' not found")


# -- demo -----------------------------------------------------------------------------------------------------


def test_demo_runs_twice_on_one_database(empty_database_url: str) -> None:
    url = empty_database_url
    first = ok(run(url, "demo"))  # migrates the empty database first
    assert f"to {HEAD}" in first.stdout
    second = ok(run(url, "demo"))
    assert "migrated" not in second.stdout  # the database is at head: nothing to migrate the second time

    for result in (first, second):
        out = result.stdout
        for expected in ("Ada Lovelace", "discord:ada.l", "telegram:ada_lovelace", "Conversations", "Tenant usage"):
            assert expected in out
        assert "same ids" in out
    with MnemoStore(url) as store:
        tenants = [t for t in store.list_tenants().items if t.name.startswith("demo-")]
        assert len(tenants) == 2
        for tenant in tenants:
            usage = store.get_tenant_usage(tenant.id)
            assert (usage.users, usage.conversations, usage.messages) == (3, 2, 10)
            assert usage.tokens > 0 and usage.storage_bytes > 0


# -- the installed script -------------------------------------------------------------------------------------


def test_installed_script_end_to_end(tmp_path: Path) -> None:
    script = shutil.which("mnemostore", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the mnemostore script is not installed next to this Python (pip install -e .)")
    url = f"sqlite:///{tmp_path / 'script.db'}"

    def script_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, "--database-url", url, *args], capture_output=True, text=True, timeout=60, check=False
        )

    assert script_run("init").returncode == 0
    demo = script_run("demo")
    assert demo.returncode == 0, demo.stderr
    assert "Tenant usage" in demo.stdout
    failed = script_run("tenant", "usage", "nobody")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        "error: tenant 'nobody' not found: give a tenant id or name from `mnemostore tenant list`"
    ]
    assert "Traceback" not in failed.stdout + failed.stderr


def test_version_and_help_load_neither_the_store_nor_a_driver():
    """``--version`` and ``--help`` answer at once: importing the package and the command tree pulls in no
    database library and no store (measured: 0.97 s -> 0.13 s for ``mnemostore --version``)."""
    heavy = ["sqlalchemy", "pydantic_settings", "mnemostore.service.store", "mnemostore.store", "numpy", "duckdb"]
    probe = (
        "import sys, mnemostore\n"
        "from mnemostore.cli.main import app\n"
        "from typer.main import get_command\n"
        "get_command(app)\n"  # builds the whole command tree, as --help does
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
    version = subprocess.run([sys.executable, "-m", "mnemostore", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("mnemostore ")


# -- nothing touched by accident ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["health"], ["tenant", "list"], ["db", "status"], ["backup", "out"]])
def test_commands_that_need_a_database_never_create_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNEMOSTORE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = run(None, *command)
    assert_error_line(result, "there is no database at mnemostore.db", "the default", "mnemostore init")
    assert list(tmp_path.iterdir()) == []  # no empty mnemostore.db for `serve` to trip over later
    named = run(str(tmp_path / "elsewhere.db"), *command)
    assert_error_line(named, "elsewhere.db", "(--database-url)")
    assert list(tmp_path.iterdir()) == []


def test_a_value_that_is_not_a_database_url_is_refused_naming_its_source(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flag = run("notaurl", "init")
    assert_error_line(flag, "--database-url: the database URL 'notaurl'", "sqlite:///path.db", "postgresql://")
    variable = run(None, "health", env={"MNEMOSTORE_DATABASE_URL": "mysql://db/x"})
    assert_error_line(variable, "MNEMOSTORE_DATABASE_URL: the database URL has scheme 'mysql'")
    assert list(tmp_path.iterdir()) == []
    ok(run("data/fine.db", "init"))  # a path ending in .db stays the short way to name a file
    assert (tmp_path / "data" / "fine.db").is_file()


def test_backup_makes_its_dated_target_folder(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    ok(run(url, "init"))
    ok(run(url, "backup", str(tmp_path / "backups" / "2026-11-25")))
    assert (tmp_path / "backups" / "2026-11-25" / "manifest.json").is_file()


def test_init_creates_a_missing_postgresql_database_or_says_how(pg_server: PostgresServer):
    base = make_url(pg_server.dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"mnemostore_test_{uuid.uuid4().hex[:12]}"
    url = base.set(database=name).render_as_string(hide_password=False)
    role = f"mnemostore_nocreate_{uuid.uuid4().hex[:8]}"
    try:
        created = ok(run(url, "init"))
        assert "Created" in created.stdout and HEAD in created.stdout
        assert "already up to date" in ok(run(url, "init")).stdout
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
        refused = run(base.set(database=f"{name}_x", username=role).render_as_string(hide_password=False), "init")
        assert_error_line(refused, "does not exist and could not be created", f"createdb -h {base.host} -p")
        assert f"-U {role} {name}_x`" in refused.stderr
    finally:
        pg_server.drop_database(url)
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_serve_on_a_taken_port_says_so_and_names_the_option(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(url, "serve", "--port", str(port))
    assert_error_line(result, f"port {port} on 127.0.0.1 is taken", "--port")
    assert not (tmp_path / "s.db").exists()  # refused before anything was set up
