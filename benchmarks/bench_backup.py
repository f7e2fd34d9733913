#!/usr/bin/env python
"""Backup and restore throughput (rows/s) of mnemostore beside the native tools, on SQLite and PostgreSQL.

Run from the repository root (see benchmarks/README.md)::

    .venv/bin/python benchmarks/bench_backup.py                    # 1,000,000 messages per backend
    .venv/bin/python benchmarks/bench_backup.py --quick            # 20,000 messages
    .venv/bin/python benchmarks/bench_backup.py --rows 200000 --backend postgres --json backup.json

Each backend gets a scratch database (a temporary SQLite file, or a new PostgreSQL database on the ``--pg-dsn``
server, dropped at the end) holding one tenant, 50 users and N messages in conversations of 1,000 (written through
the raw driver with mnemostore's statements, so counters are right). Then, on the same data in the same run:

* backup: ``MnemoStore.backup`` to a folder and to a ``.tar.gz``, beside ``pg_dump -Fc`` / ``sqlite3``'s
  ``Connection.backup`` (the ``.backup`` command);
* restore: ``MnemoStore.restore`` (and with ``verify=True``) into a fresh migrated database, beside ``pg_restore``
  into a fresh empty database / ``Connection.backup`` from the backup file into a new file.

Rows/s counts every row of every table the archive holds (for the native tools: the same number, as they copy the
same data). Each operation runs once: at these sizes one run lasts seconds, and its variance is small next to
the differences between the tools.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from _harness import Measurement, environment_line, format_table, write_json
from _raw import RawPostgres, RawSqlite, RawStore
from sqlalchemy.engine import make_url

from mnemostore import MnemoStore, NewMessage, Settings
from mnemostore.ops import migrate

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PER_CONVERSATION = 1000
USERS = 50
CONTENT = (
    "Could you summarise the design doc we discussed yesterday and list the open questions about tenant "
    "isolation, quotas and the migration plan? Keep it under ten bullet points, please."
)


@dataclass
class Scratch:
    """Scratch databases of one backend; every one made is removed at the end."""

    backend: str
    pg_dsn: str
    folder: Path
    made: list[str]

    def new(self, *, migrated: bool = True) -> str:
        if self.backend == "sqlite":
            url = f"sqlite:///{self.folder / f'db-{uuid.uuid4().hex[:8]}.db'}"
        else:
            name = f"mnemostore_bench_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(self.pg_dsn, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            url = make_url(self.pg_dsn).set(database=name).render_as_string(hide_password=False)
            self.made.append(name)
        if migrated:
            migrate.upgrade(Settings(database_url=url))
        return url

    def drop_all(self) -> None:
        if self.made:
            with psycopg.connect(self.pg_dsn, autocommit=True, connect_timeout=5) as admin:
                for name in self.made:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def scratch(backend: str, pg_dsn: str, sqlite_dir: str | None) -> Iterator[Scratch]:
    made = Scratch(backend, pg_dsn, Path(tempfile.mkdtemp(prefix="mnemostore-bench-backup-", dir=sqlite_dir)), [])
    try:
        yield made
    finally:
        made.drop_all()


def sqlite_path(url: str) -> str:
    return make_url(url).database or ""


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def seed(url: str, backend: str, rows: int) -> None:
    """One tenant, ``USERS`` users, ``rows`` messages in conversations of ``PER_CONVERSATION``."""
    with MnemoStore(url) as store:
        tenant = store.create_tenant("bench")
        t = store.tenant(tenant.id)
        users = [t.create_user(display_name=f"user {i}", email=f"user{i}@example.com").id for i in range(USERS)]
        count = -(-rows // PER_CONVERSATION)
        conversations = [t.create_conversation(users[i % USERS], title=f"chat {i}").id for i in range(count)]
    raw: RawStore = (
        RawSqlite(sqlite_path(url), tenant.id) if backend == "sqlite" else RawPostgres(libpq(url), tenant.id)
    )
    try:
        left = rows
        for conversation in conversations:
            n = min(PER_CONVERSATION, left)
            batch = [
                NewMessage(
                    role="assistant" if i % 2 else "user",
                    content=CONTENT,
                    model="gpt-4o-mini" if i % 2 else None,
                    prompt_tokens=0 if i % 2 else 42,
                    completion_tokens=120 if i % 2 else 0,
                    metadata={"channel": "web", "client": "bench", "n": i},
                )
                for i in range(n)
            ]
            raw.append_same_sql(conversation, batch)
            left -= n
    finally:
        raw.close()
    if backend == "postgres":
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def run_backend(backend: str, rows: int, pg_dsn: str, sqlite_dir: str | None) -> tuple[list[dict[str, Any]], str]:
    out: list[dict[str, Any]] = []
    with scratch(backend, pg_dsn, sqlite_dir) as dbs:
        work = dbs.folder
        source = dbs.new()
        print(f"[{backend}] seeding {rows:,} messages ...", file=sys.stderr, flush=True)
        seconds, _ = timed(lambda: seed(source, backend, rows))
        print(f"[{backend}] seeded in {seconds:.1f} s", file=sys.stderr, flush=True)

        def record(path: str, variant: str, total: int, secs: float, size: int | None, native: bool) -> None:
            m = Measurement(backend, path, variant, rows_per_op=total)
            m.add([secs], secs)
            row = m.summary()
            row["native"] = native
            row["bytes"] = size
            row["note"] = human(size) if size is not None else ""
            out.append(row)
            print(f"[{backend}] {path:<8} {variant:<32} {secs:8.2f} s  {total / secs:>12,.0f} rows/s", file=sys.stderr)

        with MnemoStore(source) as store:
            secs, result = timed(lambda: store.backup(work / "archive"))
            total = result.rows
            record("backup", "mnemostore (folder)", total, secs, size_of(result.path), False)
            secs, packed = timed(lambda: store.backup(work / "archive", compress=True))
            record("backup", "mnemostore (.tar.gz)", total, secs, size_of(packed.path), False)

        if backend == "postgres":
            dump = work / "native.dump"
            secs, _ = timed(lambda: subprocess.run(["pg_dump", "-Fc", "-f", str(dump), libpq(source)], check=True))
            record("backup", "pg_dump -Fc", total, secs, size_of(dump), True)
        else:
            copy = work / "native.db"

            def sqlite_backup(src: str, dst: str) -> None:
                a, b = sqlite3.connect(src), sqlite3.connect(dst)
                try:
                    a.backup(b)
                finally:
                    a.close()
                    b.close()

            secs, _ = timed(lambda: sqlite_backup(sqlite_path(source), str(copy)))
            record("backup", "sqlite3 Connection.backup", total, secs, size_of(copy), True)

        for variant, archive, verify in (
            ("mnemostore (folder)", result.path, False),
            ("mnemostore (.tar.gz)", packed.path, False),
            ("mnemostore --verify (folder)", result.path, True),
        ):
            target = dbs.new()
            with MnemoStore(target) as store:
                secs, restored = timed(lambda a=archive, v=verify, s=store: s.restore(a, verify=v))
            assert restored.total_rows == total
            record("restore", variant, total, secs, None, False)

        if backend == "postgres":
            target = dbs.new(migrated=False)
            secs, _ = timed(
                lambda: subprocess.run(
                    ["pg_restore", "--no-owner", "--exit-on-error", "-d", libpq(target), str(dump)], check=True
                )
            )
            record("restore", "pg_restore", total, secs, None, True)
            version = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True).stdout.strip()
        else:
            back = work / "restored.db"
            secs, _ = timed(lambda: sqlite_backup(str(copy), str(back)))
            record("restore", "sqlite3 Connection.backup", total, secs, None, True)
            version = f"SQLite {sqlite3.sqlite_version}"
    for row in out:
        native = next(r for r in out if r["path"] == row["path"] and r["native"])
        row["ratio"] = row["rows_per_s"] / native["rows_per_s"] if native["rows_per_s"] else None
    return out, version


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--rows", type=int, default=1_000_000, help="messages to back up (1,000,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 messages")
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN, help=f"server for the scratch databases ({DEFAULT_PG_DSN})")
    parser.add_argument("--sqlite-dir", help="folder for scratch files and archives (default: the system temp folder)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = 20_000
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    versions: list[str] = []
    for backend in backends:
        if backend == "postgres" and (shutil.which("pg_dump") is None or shutil.which("pg_restore") is None):
            print("skipping postgres: pg_dump / pg_restore not found on PATH", file=sys.stderr)
            continue
        try:
            found, version = run_backend(backend, args.rows, args.pg_dsn, args.sqlite_dir)
        except psycopg.OperationalError as error:
            if args.backend == "all":
                print(f"skipping postgres: cannot reach {args.pg_dsn}: {error}", file=sys.stderr)
                continue
            raise SystemExit(f"cannot reach PostgreSQL at {args.pg_dsn}: {error}") from None
        rows += found
        versions.append(version)
    print()
    print(format_table(rows).replace("x raw", "x native"))
    print(f"\n{args.rows:,} messages; " + environment_line(versions, started))
    if args.json is not None:
        environment = {"rows": args.rows, "versions": versions, "python": platform.python_version()}
        write_json(args.json, {"environment": environment, "results": rows})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
