"""Analytics (DuckDB over Parquet snapshots) on SQLite and PostgreSQL.

Every number is checked against the same number computed directly in SQL on the database; the snapshot is
checked to be incremental (a second run reads only the new rows) and to start a table over when rows below its
high-water mark changed. Each test works in a tenant of its own, with a snapshot folder of its own.
"""

from __future__ import annotations

import math
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from mnemostore import AsyncMnemoStore, AsyncTenantStore, NewMessage, Settings
from mnemostore.cli.main import app
from mnemostore.ops.analytics import Analytics, match_price
from mnemostore.ops.analytics_report import write_report
from mnemostore.store.tables import memories

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")


@dataclass
class Fixture:
    tenant: AsyncTenantStore
    name: str
    conversations: list[uuid.UUID]


@pytest.fixture
def raw(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(Settings(database_url=database_url).database_url, poolclass=sa.NullPool)
    yield engine
    engine.dispose()


def sql(engine: sa.Engine, query: str, tenant: uuid.UUID | None = None) -> list[tuple[Any, ...]]:
    """Run ``query`` with ``{day(col)}``-free text; ``:t`` is the tenant as the backend stores it."""
    params = {} if tenant is None else {"t": tenant.hex if engine.dialect.name == "sqlite" else str(tenant)}
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(query), params)]


def day(engine: sa.Engine, column: str) -> str:
    """The UTC day of a timestamp column, in the backend's SQL."""
    if engine.dialect.name == "sqlite":
        return f"date({column})"
    return f"CAST(({column} AT TIME ZONE 'UTC') AS DATE)"


def as_date(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


async def populate(astore: AsyncMnemoStore) -> Fixture:
    """Three users and conversations (one imported with messages on past days, one empty), several models,
    two tools with failures and durations, memories in two tiers."""
    name = f"analytics-{uuid.uuid4().hex[:10]}"
    t = astore.tenant((await astore.create_tenant(name)).id)
    ada, bob, eve = [await t.create_user(display_name=n) for n in ("ada", "bob", "eve")]
    first = await t.create_conversation(ada.id)
    await t.add_messages(
        first.id,
        [
            NewMessage(role="user", content="hi", prompt_tokens=0),
            NewMessage(role="assistant", content="hello", model="gpt-4o", prompt_tokens=120, completion_tokens=30),
            NewMessage(
                role="assistant", content="more", model="gpt-4o-2024-08-06", prompt_tokens=80, completion_tokens=20
            ),
            NewMessage(role="assistant", content="?", model="mystery-model", prompt_tokens=10, completion_tokens=5),
        ],
    )
    imported = await t.import_conversation(
        {
            "format": "mnemostore.conversation",
            "version": 1,
            "conversation": {
                "user_id": str(bob.id),
                "status": "archived",
                "started_at": "2026-01-10T09:00:00+00:00",
                "last_activity_at": "2026-01-11T23:30:00+00:00",
            },
            "messages": [
                {"seq": 1, "role": "user", "content": "a", "created_at": "2026-01-10T09:00:00+00:00"},
                {
                    "seq": 2,
                    "role": "assistant",
                    "content": "b",
                    "model": "gpt-4o-mini",
                    "prompt_tokens": 1000,
                    "completion_tokens": 500,
                    "created_at": "2026-01-10T23:59:59+00:00",
                },
                {"seq": 3, "role": "user", "content": "c", "created_at": "2026-01-11T00:00:00+00:00"},
            ],
        },
        new_ids=True,
    )
    empty = await t.create_conversation(eve.id)
    for duration, success in ((10.0, True), (20.0, True), (30.0, False), (40.0, True), (100.0, True)):
        await t.record_tool_execution("search", conversation_id=first.id, duration_ms=duration, success=success)
    await t.record_tool_execution("calc", duration_ms=5.0)
    await t.record_tool_execution("calc", duration_ms=None, success=False)
    for tier in ("short_term", "short_term", "long_term"):
        # dedup=False: the two identical short-term memories would otherwise merge into one (near-duplicates).
        await t.store_memory(f"remember {tier}", user_id=ada.id, tier=tier, dedup=False)
    return Fixture(tenant=t, name=name, conversations=[first.id, imported.id, empty.id])


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks: what DuckDB's quantile_cont computes."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def check_against_sql(result: Any, engine: sa.Engine, tenant: uuid.UUID, since: date | None = None) -> None:
    """Every analytics number equals the one SQL computes on the database itself."""
    after = "" if since is None else f" AND {day(engine, 'm.created_at')} >= '{since.isoformat()}'"
    expected_daily = sql(
        engine,
        f"SELECT {day(engine, 'm.created_at')} AS d, count(*), count(DISTINCT c.user_id), "
        "sum(m.prompt_tokens + m.completion_tokens) FROM messages m JOIN conversations c "
        "ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id "
        f"WHERE m.tenant_id = :t{after} GROUP BY d ORDER BY d",
        tenant,
    )
    got_daily = [(r["day"], r["messages"], r["active_users"], r["tokens"]) for r in result.daily_activity.to_pylist()]
    assert got_daily == [(as_date(d), n, u, tok) for d, n, u, tok in expected_daily]

    plain_after = after.replace("m.created_at", "created_at")
    expected_models = sql(
        engine,
        "SELECT coalesce(model, '(none)'), count(*), sum(prompt_tokens), sum(completion_tokens) FROM messages "
        f"WHERE tenant_id = :t{plain_after} GROUP BY coalesce(model, '(none)')",
        tenant,
    )
    got_models = {r["model"]: r for r in result.models.to_pylist()}
    assert set(got_models) == {m for m, *_ in expected_models}
    prices = Settings().model_prices
    for model, count, prompt, completion in expected_models:
        row = got_models[model]
        assert (row["messages"], row["prompt_tokens"], row["completion_tokens"]) == (count, prompt, completion)
        price = match_price(model, prices)
        if price is None:
            assert row["estimated_cost"] is None and row["priced_as"] is None
        else:
            assert row["priced_as"] == price[0]
            assert row["estimated_cost"] == pytest.approx((prompt * price[1][0] + completion * price[1][1]) / 1000)

    started = "" if since is None else f" AND {day(engine, 'started_at')} >= '{since.isoformat()}'"
    [(count, avg_messages, avg_tokens)] = sql(
        engine,
        f"SELECT count(*), avg(message_count), avg(total_tokens) FROM conversations WHERE tenant_id = :t{started}",
        tenant,
    )
    [conv] = result.conversations.to_pylist()
    assert conv["conversations"] == count
    assert conv["avg_messages"] == pytest.approx(float(avg_messages)) if count else conv["avg_messages"] is None
    assert conv["avg_tokens"] == pytest.approx(float(avg_tokens)) if count else True

    expected_tools = sql(
        engine,
        "SELECT tool, count(*), sum(CASE WHEN success THEN 1 ELSE 0 END) FROM tool_executions "
        f"WHERE tenant_id = :t{plain_after} GROUP BY tool",
        tenant,
    )
    durations: dict[str, list[float]] = {}
    for tool, duration in sql(
        engine,
        f"SELECT tool, duration_ms FROM tool_executions WHERE tenant_id = :t AND duration_ms IS NOT NULL{plain_after}",
        tenant,
    ):
        durations.setdefault(tool, []).append(float(duration))
    got_tools = {r["tool"]: r for r in result.tools.to_pylist()}
    assert set(got_tools) == {t for t, *_ in expected_tools}
    for tool, calls, successes in expected_tools:
        row = got_tools[tool]
        assert (row["calls"], row["successes"]) == (calls, successes)
        assert row["success_rate"] == pytest.approx(successes / calls)
        for key, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            assert row[key] == pytest.approx(percentile(durations[tool], q))

    expected_memories = sql(
        engine,
        f"SELECT {day(engine, 'created_at')} AS d, tier, count(*) FROM memories WHERE tenant_id = :t "
        "GROUP BY d, tier ORDER BY d, tier",
        tenant,
    )
    running: dict[str, int] = {}
    expected_growth = []
    for d, tier, created in expected_memories:
        running[tier] = running.get(tier, 0) + created
        if since is None or as_date(d) >= since:
            expected_growth.append((as_date(d), tier, created, running[tier]))
    got_growth = [(r["day"], r["tier"], r["created"], r["total"]) for r in result.memory_growth.to_pylist()]
    assert got_growth == expected_growth


# -- numbers ------------------------------------------------------------------------------------------------------


async def test_numbers_match_sql(astore: AsyncMnemoStore, database_url: str, raw: sa.Engine, tmp_path: Path) -> None:
    data = await populate(astore)
    result = Analytics(database_url, snapshot_dir=tmp_path).run(tenant_id=data.tenant.tenant_id)
    check_against_sql(result, raw, data.tenant.tenant_id)
    # Spot checks of the fixture itself, so the comparison above cannot pass on two empty answers.
    assert [r["day"] for r in result.daily_activity.to_pylist()][:2] == [date(2026, 1, 10), date(2026, 1, 11)]
    assert result.conversations.to_pylist()[0]["conversations"] == 3
    assert {r["model"]: r["priced_as"] for r in result.models.to_pylist()}["gpt-4o-2024-08-06"] == "gpt-4o"
    assert {r["tool"] for r in result.tools.to_pylist()} == {"search", "calc"}


async def test_since_filters_activity(
    astore: AsyncMnemoStore, database_url: str, raw: sa.Engine, tmp_path: Path
) -> None:
    data = await populate(astore)
    since = date(2026, 1, 11)
    result = Analytics(database_url, snapshot_dir=tmp_path).run(tenant_id=data.tenant.tenant_id, since=since)
    assert result.daily_activity.to_pylist()[0]["day"] == since
    check_against_sql(result, raw, data.tenant.tenant_id, since=since)


async def test_all_tenants_scope(astore: AsyncMnemoStore, database_url: str, raw: sa.Engine, tmp_path: Path) -> None:
    await populate(astore)
    result = Analytics(database_url, snapshot_dir=tmp_path).run()
    [(messages,)] = sql(raw, "SELECT count(*) FROM messages")
    assert sum(r["messages"] for r in result.daily_activity.to_pylist()) == messages
    [(conversations,)] = sql(raw, "SELECT count(*) FROM conversations")
    assert result.conversations.to_pylist()[0]["conversations"] == conversations


# -- incremental snapshots ----------------------------------------------------------------------------------------


def reads(result: Any) -> dict[str, tuple[str, int]]:
    return {s.table: (s.mode, s.rows_read) for s in result.snapshot}


async def test_second_run_reads_only_new_rows(
    astore: AsyncMnemoStore, database_url: str, raw: sa.Engine, tmp_path: Path
) -> None:
    data = await populate(astore)
    t, tid = data.tenant, data.tenant.tenant_id
    analytics = Analytics(database_url, snapshot_dir=tmp_path)
    first = analytics.run(tenant_id=tid)
    assert reads(first) == {
        "messages": ("full", 7),
        "tool_executions": ("full", 7),
        "memories": ("full", 3),
        "conversations": ("whole", 3),
    }
    assert reads(analytics.run(tenant_id=tid)) == {
        "messages": ("incremental", 0),
        "tool_executions": ("incremental", 0),
        "memories": ("incremental", 0),
        "conversations": ("whole", 3),
    }

    await t.add_messages(data.conversations[0], [NewMessage(role="user", content=str(i)) for i in range(4)])
    await t.record_tool_execution("search", duration_ms=7.0)
    third = analytics.run(tenant_id=tid)
    assert reads(third) == {
        "messages": ("incremental", 4),
        "tool_executions": ("incremental", 1),
        "memories": ("incremental", 0),
        "conversations": ("whole", 3),  # mutable: read whole, so the new counters show
    }
    assert {s.table: s.rows_total for s in third.snapshot}["messages"] == 11
    check_against_sql(third, raw, tid)
    parts = sorted(p.name for p in (analytics.scope_dir(tid) / "messages").iterdir())
    assert parts == ["part-000001.parquet", "part-000003.parquet"]  # the empty run wrote no file


async def test_rows_changed_below_the_mark_start_the_table_over(
    astore: AsyncMnemoStore, database_url: str, raw: sa.Engine, tmp_path: Path
) -> None:
    data = await populate(astore)
    t, tid = data.tenant, data.tenant.tenant_id
    analytics = Analytics(database_url, snapshot_dir=tmp_path)
    analytics.run(tenant_id=tid)

    history = await t.get_conversation_history(data.conversations[0])
    await t.delete_message(history.messages[0].id)
    after_delete = analytics.run(tenant_id=tid)
    snap = {s.table: s for s in after_delete.snapshot}["messages"]
    assert (snap.mode, snap.rows_read, snap.rows_total) == ("full", 6, 6)
    assert snap.reason is not None and "deleted or late" in snap.reason
    check_against_sql(after_delete, raw, tid)

    # A row that arrives below the mark (an import keeping old ids) is noticed too.
    old_id = "00000000-0000-7000-8000-000000000001"
    await t.import_conversation(
        {
            "format": "mnemostore.conversation",
            "version": 1,
            "conversation": {
                "id": str(uuid.uuid4()),
                "user_id": str((await t.list_users()).items[0].id),
                "started_at": "2026-02-01T00:00:00+00:00",
                "last_activity_at": "2026-02-01T00:00:00+00:00",
            },
            "messages": [
                {"id": old_id, "seq": 1, "role": "user", "content": "x", "created_at": "2026-02-01T00:00:00Z"}
            ],
        }
    )
    late = analytics.run(tenant_id=tid)
    assert reads(late)["messages"] == ("full", 7)
    check_against_sql(late, raw, tid)
    assert reads(analytics.run(tenant_id=tid))["messages"] == ("incremental", 0)
    assert reads(analytics.run(tenant_id=tid, full=True))["messages"] == ("full", 7)


async def test_updated_memories_start_the_table_over(
    astore: AsyncMnemoStore, database_url: str, raw: sa.Engine, tmp_path: Path
) -> None:
    """Memories carry updated_at: a row updated below the mark (a tier change) is noticed."""
    data = await populate(astore)
    tid = data.tenant.tenant_id
    analytics = Analytics(database_url, snapshot_dir=tmp_path)
    analytics.run(tenant_id=tid)
    [memory] = (await data.tenant.retrieve_memories(tier="long_term")).items
    with raw.begin() as conn:
        conn.execute(
            sa.update(memories)
            .where(memories.c.tenant_id == tid, memories.c.id == memory.id)
            .values(tier="short_term", updated_at=datetime.now(UTC))
        )
    result = analytics.run(tenant_id=tid)
    snap = {s.table: s for s in result.snapshot}["memories"]
    assert (snap.mode, snap.rows_read) == ("full", 3) and "updated" in (snap.reason or "")
    check_against_sql(result, raw, tid)
    assert {r["tier"] for r in result.memory_growth.to_pylist()} == {"short_term"}


async def test_snapshot_holds_no_content(astore: AsyncMnemoStore, database_url: str, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    data = await populate(astore)
    analytics = Analytics(database_url, snapshot_dir=tmp_path)
    analytics.snapshot(tenant_id=data.tenant.tenant_id)
    columns = {
        path.parent.name: set(pq.read_schema(path).names)
        for path in analytics.scope_dir(data.tenant.tenant_id).glob("*/*.parquet")
    }
    assert set(columns) == {"messages", "tool_executions", "memories", "conversations"}
    assert not {"content", "metadata", "parameters", "result", "title"} & set().union(*columns.values())


# -- report, pandas, command --------------------------------------------------------------------------------------


async def test_report_files(astore: AsyncMnemoStore, database_url: str, tmp_path: Path) -> None:
    data = await populate(astore)
    conv = await data.tenant.create_conversation((await data.tenant.list_users()).items[0].id)
    await data.tenant.add_message(conv.id, role="assistant", content="x", model="<script>alert(1)</script>")
    result = Analytics(database_url, snapshot_dir=tmp_path / "snap").run(tenant_id=data.tenant.tenant_id)
    files = write_report(result, tmp_path / "out")
    assert [f.name for f in files] == [
        "daily_activity.png",
        "models.png",
        "tools.png",
        "memory_growth.png",
        "report.html",
    ]
    for png in files[:-1]:
        assert png.read_bytes().startswith(b"\x89PNG")
    page = files[-1].read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


async def test_empty_tenant_report(astore: AsyncMnemoStore, database_url: str, tmp_path: Path) -> None:
    tenant = await astore.create_tenant(f"analytics-empty-{uuid.uuid4().hex[:8]}")
    result = Analytics(database_url, snapshot_dir=tmp_path).run(tenant_id=tenant.id)
    assert result.daily_activity.num_rows == result.tools.num_rows == 0
    assert result.conversations.to_pylist()[0]["conversations"] == 0
    assert write_report(result, tmp_path / "out")[-1].exists()


async def test_to_pandas(astore: AsyncMnemoStore, database_url: str, tmp_path: Path) -> None:
    data = await populate(astore)
    result = Analytics(database_url, snapshot_dir=tmp_path).run(tenant_id=data.tenant.tenant_id)
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            result.to_pandas()
    else:
        frames = result.to_pandas()
        assert len(frames["tools"]) == 2


async def test_analytics_command(astore: AsyncMnemoStore, database_url: str, tmp_path: Path) -> None:
    data = await populate(astore)
    args = ["--database-url", database_url, "analytics", "--tenant", data.name, "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for title in ("Messages and active users per day", "Tokens and estimated cost per model", "Tools"):
        assert title in result.stdout
    assert (tmp_path / "report.html").exists() and (tmp_path / "snapshot").is_dir()
    again = CliRunner().invoke(app, [*args, "--since", "2026-01-11"])
    assert again.exit_code == 0, again.output
    assert "messages +0 (incremental)" in again.stdout


def test_analytics_without_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)  # as if it were not installed
    result = CliRunner().invoke(app, ["--database-url", f"sqlite:///{tmp_path / 'x.db'}", "analytics"])
    assert result.exit_code == 1
    assert "pip install 'mnemostore[analytics]'" in result.stderr
    assert "Traceback" not in result.output


def test_match_price() -> None:
    prices = {"gpt-4o": (1.0, 2.0), "gpt-4o-mini": (0.1, 0.2)}
    assert match_price("gpt-4o", prices) == ("gpt-4o", (1.0, 2.0))
    assert match_price("gpt-4o-mini-2024-07-18", prices) == ("gpt-4o-mini", (0.1, 0.2))
    assert match_price("claude", prices) is None


def test_now_is_after_the_fixture_days() -> None:
    """The fixture's imported days must lie in the past for the per-day checks to mean anything."""
    assert datetime.now(UTC).date() > date(2026, 1, 11)
