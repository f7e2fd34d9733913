"""Shared by the backup tests: scratch databases, a data set touching every table, and a backend-neutral dump.

The dump reads every table with plain SQLAlchemy (not the archive code), so comparing two dumps checks a restore
independently of the encoding it went through.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mnemostore import MnemoStore, NewMessage, Settings
from mnemostore.ops import migrate
from mnemostore.store.tables import metadata

Dump = dict[str, set[str]]


class Databases:
    """Scratch databases of one test, cloned from templates made once per session, dropped at teardown.

    ``new`` clones an empty migrated database, ``seeded`` one holding ``seed()``'s rows (the same ids every time:
    ``seeded_ids``). PostgreSQL clones with ``CREATE DATABASE … TEMPLATE``, SQLite by copying the file.
    """

    def __init__(self, templates: Templates, tmp_path: Path) -> None:
        self.templates = templates
        self.tmp_path = tmp_path
        self.made: list[str] = []

    def new(self, backend: str, *, migrated: bool = True) -> str:
        if not migrated:
            return self._fresh(backend)
        return self._clone(backend, self.templates.url(backend, "empty"))

    def seeded(self, backend: str) -> str:
        return self._clone(backend, self.templates.url(backend, "seeded"))

    def seeded_ids(self, backend: str) -> Seeded:
        self.templates.url(backend, "seeded")
        return self.templates.seeded[backend]

    def _fresh(self, backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self.tmp_path / f'db-{uuid.uuid4().hex[:8]}.db'}"
        url: str = self.templates.pg().create_database()
        self.made.append(url)
        return url

    def _clone(self, backend: str, template: str) -> str:
        if backend == "sqlite":
            url = self._fresh(backend)
            shutil.copyfile(make_url(template).database or "", make_url(url).database or "")
            return url
        name = f"mnemostore_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.templates.pg().dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template).database}"')
        url = make_url(template).set(database=name).render_as_string(hide_password=False)
        self.made.append(url)
        return url

    def close(self) -> None:
        for url in self.made:
            self.templates.pg().drop_database(url)


class Templates:
    """The session's template databases, ``empty`` (migrated) and ``seeded``, per backend, made on first use."""

    def __init__(self, request: pytest.FixtureRequest, folder: Path) -> None:
        self.request = request
        self.folder = folder
        self.urls: dict[tuple[str, str], str] = {}
        self.seeded: dict[str, Seeded] = {}
        self._pg: Any = None

    def pg(self) -> Any:
        if self._pg is None:
            self._pg = self.request.getfixturevalue("pg_server")
        return self._pg

    def url(self, backend: str, kind: str) -> str:
        if (backend, kind) not in self.urls:
            if backend == "sqlite":
                url = f"sqlite:///{self.folder / f'template-{kind}.db'}"
            else:
                url = self.pg().create_database()
            migrate.upgrade(Settings(database_url=url))
            if kind == "seeded":
                self.seeded[backend] = seed(url)
            self.urls[backend, kind] = url
        return self.urls[backend, kind]

    def close(self) -> None:
        for (backend, _), url in self.urls.items():
            if backend == "postgres":
                self.pg().drop_database(url)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        assert value.tzinfo is not None
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def dump(url: str, *, tenant_id: uuid.UUID | None = None) -> Dump:
    """Every row of every table (of one tenant), as canonical JSON strings, per table."""
    engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
    out: Dump = {}
    try:
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                query = sa.select(table)
                if tenant_id is not None:
                    key = table.c.id if table.name == "tenants" else table.c.tenant_id
                    query = query.where(key == tenant_id)
                rows = conn.execute(query).mappings()
                out[table.name] = {json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True) for row in rows}
    finally:
        engine.dispose()
    return out


def rows_of(data: Dump, table: str) -> list[dict[str, Any]]:
    return [json.loads(row) for row in data[table]]


@dataclass
class Seeded:
    tenant_ids: list[uuid.UUID] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    users: dict[str, uuid.UUID] = field(default_factory=dict)  # "<tenant index>:<name>" -> id
    conversations: list[uuid.UUID] = field(default_factory=list)


def seed(url: str, *, tenants: int = 2, messages: int = 6) -> Seeded:
    """Rows in every table for ``tenants`` tenants: two users each (ada, bob), unicode, nested JSON, NULLs."""
    out = Seeded()
    with MnemoStore(url) as store:
        for index in range(tenants):
            name = f"tenant-{index}-{uuid.uuid4().hex[:6]}"
            tenant = store.create_tenant(name, plan="pro", config={"z": 1, "a": {"nested": [1, 2.5, None]}})
            out.tenant_ids.append(tenant.id)
            out.names.append(name)
            t = store.tenant(tenant.id)
            t.create_api_key("ci")
            t.set_channel_config("discord", default_model="m", settings={"k": "v"}, rate_limits={"user": "5/minute"})
            t.upsert_knowledge("docs", "a", "Knowledge é ✓", title="A", metadata={"lang": "fr"})
            t.store_memory("tenant-wide fact", importance=0.25)
            for who in ("ada", "bob"):
                user = t.get_or_create_user_by_identity(
                    "discord", f"{who}-{index}", username=who, email=f"{who}-{index}@example.com",
                    metadata={"b": [1, {"y": 2, "x": 1}], "a": "ü"},
                )  # fmt: skip
                t.link_identity(user.id, "telegram", f"tg-{who}-{index}")
                out.users[f"{index}:{who}"] = user.id
                conv = t.create_conversation(user.id, title=f"{who} chat", channel="discord", metadata={"t": 1})
                out.conversations.append(conv.id)
                added = t.add_messages(
                    conv.id,
                    [
                        NewMessage(
                            role="user" if n % 2 else "assistant",
                            content=f"{who} {n} — ✓ 😀",
                            prompt_tokens=n,
                            completion_tokens=2 * n,
                            metadata={"n": n, "tags": ["a", "b"]},
                            idempotency_key=f"k{n}" if n % 3 == 0 else None,
                        )
                        for n in range(1, messages + 1)
                    ],
                )
                t.store_memory(
                    f"{who} likes tea",
                    user_id=user.id,
                    importance=0.75,
                    expires_at=datetime.now(UTC) + timedelta(days=3),
                    source_message_ids=[added[0].id],
                )
                t.record_tool_execution("search", conversation_id=conv.id, parameters={"q": "x"}, result=[1, "two"])
                t.record_tool_execution("clock", result=None, success=False, error="boom", duration_ms=1.5)
                chk = t.create_checkpoint(conv.id, iteration=1, state={"goal": "g"}, name="first")
                t.record_interaction_event("approval", conversation_id=conv.id, checkpoint_id=chk.id, data={"ok": True})
                t.record_metric("latency_ms", 12.5, conversation_id=conv.id, labels={"model": "m"})
                t.record_metric("tenant_metric", 1.0)
    return out
