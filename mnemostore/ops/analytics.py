"""Usage analytics with DuckDB over incremental Parquet snapshots (extra ``analytics``: duckdb, pyarrow, matplotlib).

The operational database is never asked an analytical question. ``Analytics.snapshot`` copies the few columns the
reports need into Parquet files, and DuckDB answers from those:

* messages and active users per day (a user is active on a day when a conversation they own got a message);
* messages, tokens and estimated cost per model (``Settings.model_prices``, per 1,000 tokens);
* conversations, and their average length in messages and tokens;
* tool calls, success rate and latency percentiles (p50, p95, p99) per tool;
* memories created per tier per day, with each tier's running total.

**Incremental snapshots.** A snapshot folder holds, per table, Parquet part files and a ``_state.json`` naming
them and the table's high-water mark: the highest id read. Ids are UUIDv7 and grow with time, so a run reads only
rows above the mark and adds one part file. Mutable tables (conversations) are read whole every run instead. A
run also counts the rows at or below the mark (and, for memories, those updated since): when that count is not
what the snapshot holds, rows were deleted, imported with old ids, or committed late, and that table is read again
from scratch. This is simple and correct, with one documented blind spot: a delete and a late insert below the
mark between two runs cancel out in the count; ``full=True`` (``--full``) rebuilds every table. Part files the
state does not name (a run that died before saving it) are deleted, so a crash never double-counts.

A snapshot covers one scope, the whole database or one tenant (read in that tenant's scope, so row-level
security applies), in its own folder. Nothing here writes to the database.

Example::

    from mnemostore.ops.analytics import Analytics

    result = Analytics("postgresql://…").run(since=date(2026, 1, 1))
    result.models            # a pyarrow Table
    result.to_pandas()["tools"]  # DataFrames, when pandas is installed
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mnemostore.config import Settings
from mnemostore.ops import migrate
from mnemostore.store import Database
from mnemostore.store import snapshot as store_snapshot

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = [
    "INSTALL_HINT",
    "Analytics",
    "AnalyticsResult",
    "TableSnapshot",
    "default_snapshot_dir",
    "match_price",
]

INSTALL_HINT = "pip install 'mnemostore[analytics]'"
STATE_FILE = "_state.json"
STATE_VERSION = 1


def require(module: str) -> Any:
    """Import an optional dependency of analytics, or raise ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"analytics needs the {module} package, which is not installed: {INSTALL_HINT}", name=module
        ) from error


@dataclass(frozen=True, slots=True)
class TableSnapshot:
    """What one run did to one table of the snapshot.

    Attributes:
        mode: ``incremental`` (rows above the mark only), ``full`` (read from scratch) or ``whole`` (a mutable
            table, read entirely by design).
        rows_read: rows fetched from the database by this run.
        rows_total: rows the snapshot now holds for the table.
        reason: why a table meant to grow incrementally was read from scratch.
    """

    table: str
    mode: Literal["incremental", "full", "whole"]
    rows_read: int
    rows_total: int
    reason: str | None = None


@dataclass(slots=True, kw_only=True)
class AnalyticsResult:
    """The answers, as pyarrow Tables (``to_pandas`` converts them when pandas is installed)."""

    daily_activity: pa.Table
    models: pa.Table
    conversations: pa.Table
    tools: pa.Table
    memory_growth: pa.Table
    tenant_id: uuid.UUID | None
    since: date | None
    snapshot: list[TableSnapshot] = field(default_factory=list)

    def tables(self) -> dict[str, pa.Table]:
        return {
            "daily_activity": self.daily_activity,
            "models": self.models,
            "conversations": self.conversations,
            "tools": self.tools,
            "memory_growth": self.memory_growth,
        }

    def to_pandas(self) -> dict[str, Any]:
        """The tables as pandas DataFrames.

        Raises:
            ImportError: pandas is not installed.
        """
        if importlib.util.find_spec("pandas") is None:
            raise ImportError("to_pandas needs pandas, which is not installed: pip install pandas", name="pandas")
        return {name: table.to_pandas() for name, table in self.tables().items()}


def default_snapshot_dir(settings: Settings) -> Path:
    """``$XDG_CACHE_HOME/mnemostore/analytics/<database>``: one folder per database, named by its redacted URL."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(settings.redacted_url().encode()).hexdigest()[:16]
    return root / "mnemostore" / "analytics" / digest


def match_price(model: str, prices: Mapping[str, tuple[float, float]]) -> tuple[str, tuple[float, float]] | None:
    """The price of ``model``: its own entry, else the longest entry it starts with (dated model versions)."""
    if model in prices:
        return model, prices[model]
    prefixes = [name for name in prices if model.startswith(name)]
    if not prefixes:
        return None
    best = max(prefixes, key=len)
    return best, prices[best]


class Analytics:
    """Snapshots of one database and the questions DuckDB answers from them.

    Args:
        settings: the database (a Settings, or a database URL).
        snapshot_dir: where snapshots live (one sub-folder per scope); default ``default_snapshot_dir``.
    """

    def __init__(self, settings: Settings | str | None = None, *, snapshot_dir: Path | str | None = None) -> None:
        if not isinstance(settings, Settings):
            settings = Settings(database_url=settings) if settings is not None else Settings()
        self.settings = settings
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else default_snapshot_dir(settings)

    def scope_dir(self, tenant_id: uuid.UUID | None) -> Path:
        return self.snapshot_dir / (f"tenant-{tenant_id}" if tenant_id is not None else "all")

    def run(
        self, *, tenant_id: uuid.UUID | None = None, since: date | None = None, full: bool = False
    ) -> AnalyticsResult:
        """Bring the snapshot up to date, then answer every question from it."""
        stats = self.snapshot(tenant_id=tenant_id, full=full)
        result = self.compute(tenant_id=tenant_id, since=since)
        result.snapshot = stats
        return result

    # -- snapshot ----------------------------------------------------------------------------------------------

    def snapshot(self, *, tenant_id: uuid.UUID | None = None, full: bool = False) -> list[TableSnapshot]:
        """Copy what changed since the last run into the scope's Parquet files (see the module docstring).

        Raises:
            SchemaOutOfDate: the database is not at the schema this code reads.
            BackendUnavailable: the database cannot be reached.
        """
        pa = require("pyarrow")
        require("pyarrow.parquet")
        folder = self.scope_dir(tenant_id)
        folder.mkdir(parents=True, exist_ok=True)
        state = _load_state(folder, self._identity(tenant_id))
        db = Database(self.settings)
        try:
            db.check_schema(migrate.head_revision())
            with db.snapshot(tenant_id) as conn:
                stats = [
                    self._snapshot_table(pa, conn, spec, folder, state, tenant_id=tenant_id, full=full)
                    for spec in store_snapshot.SNAPSHOT_TABLES
                ]
        finally:
            db.close()
        _save_state(folder, state)
        _remove_strays(folder, state)
        return stats

    def _identity(self, tenant_id: uuid.UUID | None) -> dict[str, Any]:
        # A snapshot is only extended by runs that read the same thing the same way; anything else starts over.
        columns = {spec.name: spec.columns for spec in store_snapshot.SNAPSHOT_TABLES}
        return {
            "version": STATE_VERSION,
            "database": self.settings.redacted_url(),
            "scope": str(tenant_id) if tenant_id is not None else "all",
            "columns": hashlib.sha256(json.dumps(columns).encode()).hexdigest()[:16],
        }

    def _snapshot_table(
        self,
        pa: Any,
        conn: Any,
        spec: store_snapshot.SnapshotTable,
        folder: Path,
        state: dict[str, Any],
        *,
        tenant_id: uuid.UUID | None,
        full: bool,
    ) -> TableSnapshot:
        tables: dict[str, Any] = state["tables"]
        held: dict[str, Any] | None = tables.get(spec.name)
        reason = None
        mode: Literal["incremental", "full", "whole"]
        if spec.mode == "whole":
            mode = "whole"
        elif held is None:
            mode = "full"  # the first run
        elif full:
            mode, reason = "full", "full refresh requested"
        elif held["mark"] is not None and (reason := self._stale_reason(conn, spec, held, tenant_id)) is not None:
            mode = "full"
        else:
            mode = "incremental"
        if mode != "incremental":
            # Start over; the run counter goes on, so the new part never overwrites one the old state names.
            held = {"mark": None, "rows": 0, "parts": [], "updated_max": None, "run": held["run"] if held else 0}
        assert held is not None
        run = int(held["run"]) + 1
        part = f"{spec.name}/part-{run:06d}.parquet"
        after = uuid.UUID(held["mark"]) if held["mark"] else None
        read, mark, updated_max = _write_part(
            pa,
            conn,
            spec,
            folder / part,
            _arrow_schema(pa, spec),
            tenant_id=tenant_id,
            after=after,
            write_empty=not held["parts"],
        )
        if read or not held["parts"]:
            held["parts"] = [*held["parts"], part]
        marks = [m for m in (after, mark) if m is not None]
        held.update(
            run=run,
            rows=held["rows"] + read,
            mark=str(max(marks)) if marks else None,
            updated_max=_max_iso(held["updated_max"], updated_max),
            snapshot_at=datetime.now(UTC).isoformat(),
        )
        tables[spec.name] = held
        return TableSnapshot(spec.name, mode, read, held["rows"], reason)

    def _stale_reason(
        self, conn: Any, spec: store_snapshot.SnapshotTable, held: Mapping[str, Any], tenant_id: uuid.UUID | None
    ) -> str | None:
        mark = uuid.UUID(held["mark"])
        below = store_snapshot.rows_below(conn, spec, tenant_id=tenant_id, mark=mark)
        if below != held["rows"]:
            return f"{below} rows at or below the mark, the snapshot holds {held['rows']} (deleted or late rows)"
        if spec.updated and held.get("updated_max"):
            since = datetime.fromisoformat(held["updated_max"])
            changed = store_snapshot.changed_below(conn, spec, tenant_id=tenant_id, mark=mark, since=since)
            if changed:
                return f"{changed} rows updated since the last run"
        return None

    # -- questions ---------------------------------------------------------------------------------------------

    def compute(self, *, tenant_id: uuid.UUID | None = None, since: date | None = None) -> AnalyticsResult:
        """Answer every question from the scope's snapshot as it is (run ``snapshot`` first to refresh it).

        Args:
            since: only activity on or after this day (UTC); memory totals still count what came before.
        """
        duckdb = require("duckdb")
        folder = self.scope_dir(tenant_id)
        state = _load_state(folder, self._identity(tenant_id))
        if not state["tables"]:
            raise FileNotFoundError(f"no snapshot in {folder}: run snapshot() first")
        con = duckdb.connect()
        try:
            for spec in store_snapshot.SNAPSHOT_TABLES:
                parts = [str(folder / p) for p in state["tables"][spec.name]["parts"]]
                files = ", ".join("'" + p.replace("'", "''") + "'" for p in parts)
                con.execute(f"CREATE VIEW {spec.name} AS SELECT * FROM read_parquet([{files}])")
            return AnalyticsResult(
                daily_activity=_query(con, DAILY_ACTIVITY, since),
                models=_with_costs(_query(con, MODELS, since), self.settings.model_prices),
                conversations=_query(con, CONVERSATIONS, since),
                tools=_query(con, TOOLS, since),
                memory_growth=_query(con, MEMORY_GROWTH, since),
                tenant_id=tenant_id,
                since=since,
            )
        finally:
            con.close()


# -- the questions, in DuckDB SQL (timestamps are naive UTC; ``$since`` is a DATE or NULL; sums are cast back to
# BIGINT, as DuckDB widens them to HUGEINT, which Arrow turns into decimals) ------------------------------------

DAILY_ACTIVITY = """
SELECT CAST(m.created_at AS DATE) AS day,
       count(*) AS messages,
       count(DISTINCT c.user_id) AS active_users,
       CAST(sum(m.prompt_tokens + m.completion_tokens) AS BIGINT) AS tokens
FROM messages m
LEFT JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
WHERE $since IS NULL OR m.created_at >= $since
GROUP BY day ORDER BY day
"""

MODELS = """
SELECT coalesce(model, '(none)') AS model,
       count(*) AS messages,
       CAST(sum(prompt_tokens) AS BIGINT) AS prompt_tokens,
       CAST(sum(completion_tokens) AS BIGINT) AS completion_tokens,
       CAST(sum(prompt_tokens + completion_tokens) AS BIGINT) AS total_tokens
FROM messages
WHERE $since IS NULL OR created_at >= $since
GROUP BY model ORDER BY total_tokens DESC, model
"""

CONVERSATIONS = """
SELECT count(*) AS conversations,
       CAST(coalesce(sum(message_count), 0) AS BIGINT) AS messages,
       avg(message_count) AS avg_messages,
       avg(total_tokens) AS avg_tokens,
       max(message_count) AS max_messages
FROM conversations
WHERE $since IS NULL OR started_at >= $since
"""

TOOLS = """
SELECT tool,
       count(*) AS calls,
       count(*) FILTER (WHERE success) AS successes,
       count(*) FILTER (WHERE success) / count(*) AS success_rate,
       quantile_cont(duration_ms, 0.5) AS p50_ms,
       quantile_cont(duration_ms, 0.95) AS p95_ms,
       quantile_cont(duration_ms, 0.99) AS p99_ms
FROM tool_executions
WHERE $since IS NULL OR created_at >= $since
GROUP BY tool ORDER BY calls DESC, tool
"""

MEMORY_GROWTH = """
WITH daily AS (
    SELECT CAST(created_at AS DATE) AS day, tier, count(*) AS created FROM memories GROUP BY day, tier
)
SELECT day, tier, created, CAST(sum(created) OVER (PARTITION BY tier ORDER BY day) AS BIGINT) AS total
FROM daily
QUALIFY $since IS NULL OR day >= $since
ORDER BY day, tier
"""


def _query(con: duckdb.DuckDBPyConnection, sql: str, since: date | None) -> pa.Table:
    relation: Any = con.sql(sql, params={"since": since})
    # DuckDB 2 renamed fetch_arrow_table; take whichever this version has.
    fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return fetch()


def _with_costs(table: pa.Table, prices: Mapping[str, tuple[float, float]]) -> pa.Table:
    """Add ``priced_as`` and ``estimated_cost`` (None for models without a price) to the per-model table."""
    pa = require("pyarrow")
    matched = [match_price(model, prices) for model in table.column("model").to_pylist()]
    costs = [
        None if m is None else (p * m[1][0] + c * m[1][1]) / 1000
        for m, p, c in zip(
            matched,
            table.column("prompt_tokens").to_pylist(),
            table.column("completion_tokens").to_pylist(),
            strict=True,
        )
    ]
    table = table.append_column("priced_as", pa.array([m[0] if m else None for m in matched], pa.string()))
    return table.append_column("estimated_cost", pa.array(costs, pa.float64()))


# -- files -----------------------------------------------------------------------------------------------------


def _arrow_schema(pa: Any, spec: store_snapshot.SnapshotTable) -> Any:
    types = {
        "uuid": pa.string(),
        "timestamp": pa.timestamp("us"),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "text": pa.string(),
    }
    return pa.schema([(name, types[kind]) for name, kind in spec.kinds().items()])


def _write_part(
    pa: Any,
    conn: Any,
    spec: store_snapshot.SnapshotTable,
    path: Path,
    schema: Any,
    *,
    tenant_id: uuid.UUID | None,
    after: uuid.UUID | None,
    write_empty: bool,
) -> tuple[int, uuid.UUID | None, datetime | None]:
    """Stream the rows above ``after`` into one Parquet file; returns (rows, highest id, newest update)."""
    import pyarrow.parquet as pq

    kinds = spec.kinds()
    converters = [_CONVERT[kinds[name]] for name in spec.columns]
    updated_index = spec.columns.index(spec.updated) if spec.updated else None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    writer = None
    read = 0
    mark: uuid.UUID | None = None
    updated_max: datetime | None = None
    id_index = spec.columns.index("id")
    try:
        for batch in store_snapshot.read_rows(conn, spec, tenant_id=tenant_id, after=after):
            columns: list[list[Any]] = [[] for _ in spec.columns]
            for row in batch:
                for i, value in enumerate(row):
                    columns[i].append(converters[i](value))
                mark = row[id_index] if mark is None or row[id_index] > mark else mark
                if updated_index is not None and row[updated_index] is not None:
                    updated = row[updated_index]
                    updated_max = updated if updated_max is None or updated > updated_max else updated_max
            if writer is None:
                writer = pq.ParquetWriter(tmp, schema)
            arrays = [pa.array(values, column.type) for values, column in zip(columns, schema, strict=True)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            read += len(batch)
        if writer is None and write_empty:
            writer = pq.ParquetWriter(tmp, schema)
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        tmp.replace(path)
    return read, mark, updated_max


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


_CONVERT: dict[str, Any] = {
    "uuid": lambda v: None if v is None else str(v),
    "timestamp": _naive_utc,
    "int": lambda v: v,
    "float": lambda v: v,
    "bool": lambda v: None if v is None else bool(v),
    "text": lambda v: v,
}


def _max_iso(held: str | None, new: datetime | None) -> str | None:
    if new is None:
        return held
    new = new.astimezone(UTC) if new.tzinfo is not None else new.replace(tzinfo=UTC)
    if held is None:
        return new.isoformat()
    return max(datetime.fromisoformat(held), new).isoformat()


def _load_state(folder: Path, identity: Mapping[str, Any]) -> dict[str, Any]:
    path = folder / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        state = None
    if not isinstance(state, dict) or state.get("identity") != dict(identity):
        return {"identity": dict(identity), "tables": {}}
    return state


def _save_state(folder: Path, state: Mapping[str, Any]) -> None:
    tmp = folder / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(folder / STATE_FILE)


def _remove_strays(folder: Path, state: Mapping[str, Any]) -> None:
    """Delete part files the state does not name: left by a run that died, or replaced by a full refresh."""
    named = {folder / p for table in state["tables"].values() for p in table["parts"]}
    for spec in store_snapshot.SNAPSHOT_TABLES:
        for path in _iter_files(folder / spec.name):
            if path not in named:
                path.unlink(missing_ok=True)


def _iter_files(folder: Path) -> Iterable[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []
