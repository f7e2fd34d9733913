"""Schema migrations on real databases: up, down, status, drift between models and revisions, and the errors.

Each test that migrates gets a brand-new database (``empty_database_url``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mnemostore import (
    AsyncMnemoStore,
    BackendUnavailable,
    ConfigurationError,
    MigrationError,
    MigrationStatus,
    MnemoStore,
    MnemostoreError,
    SchemaError,
    SchemaOutOfDate,
    Settings,
)
from mnemostore.migrations._filters import include_object, is_search_object
from mnemostore.ops import migrate
from mnemostore.store import tables
from mnemostore.store.tables import embeddings, metadata

HEAD = "0013"
REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012", "0013"]
MODEL_TABLES = set(metadata.tables)


@pytest.fixture
def settings(empty_database_url: str) -> Settings:
    return Settings(database_url=empty_database_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[sa.Engine]:
    """A plain engine on the test database, as the admin who created it (no tenant scope, no role switch)."""
    eng = sa.create_engine(settings.database_url, poolclass=sa.NullPool)
    yield eng
    eng.dispose()


def table_names(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        # FTS5 tables (SQLite) live outside the models: see mnemostore.migrations._filters.
        return {name for name in sa.inspect(conn).get_table_names() if not is_search_object(name, "table")}


def schema_diff(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True, "include_object": include_object}
        )
        return list(compare_metadata(context, metadata))


def assert_schema_complete(engine: sa.Engine) -> None:
    assert table_names(engine) == MODEL_TABLES | {"alembic_version"}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                    "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname <> 'alembic_version'"
                )
            ).all()
        # Every mnemostore table has row-level security on, forced, with its tenant and admin policies.
        assert {r[0] for r in rows} == MODEL_TABLES
        assert [r[0] for r in rows if not (r[1] and r[2] and r[3] == 2)] == []


def _citus(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")).scalar()
        )


# -- upgrade / downgrade ------------------------------------------------------------------------------------------


def test_upgrade_downgrade_upgrade(settings: Settings, engine: sa.Engine) -> None:
    migrate.upgrade(settings)
    assert_schema_complete(engine)

    migrate.downgrade(settings, "base")
    assert table_names(engine) - {"alembic_version"} == set()
    assert migrate.get_migration_status(settings).current is None

    migrate.upgrade(settings)
    assert_schema_complete(engine)
    assert schema_diff(engine) == []


def test_upgrade_twice_is_a_no_op(settings: Settings, engine: sa.Engine) -> None:
    migrate.upgrade(settings)
    migrate.upgrade(settings)
    migrate.upgrade(settings, HEAD)
    assert_schema_complete(engine)
    assert migrate.get_migration_status(settings).current == HEAD


def test_migration_status_before_and_after(settings: Settings) -> None:
    before = migrate.get_migration_status(settings)
    assert isinstance(before, MigrationStatus)
    assert before.current is None
    assert before.head == HEAD == migrate.head_revision()
    assert [r.revision for r in before.pending] == REVISIONS
    assert before.pending[0].down_revision is None
    assert before.pending[0].message.startswith("initial schema")
    assert not before.up_to_date

    migrate.upgrade(settings)

    after = migrate.get_migration_status(settings)
    assert (after.current, after.head, after.pending, after.up_to_date) == (HEAD, HEAD, [], True)


def test_history_is_a_single_chain() -> None:
    revisions = migrate.history()
    assert revisions[0].down_revision is None
    for older, newer in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision
    assert revisions[-1].revision == migrate.head_revision()


def test_models_and_migrations_agree(settings: Settings, engine: sa.Engine) -> None:
    """Alembic autogenerate finds nothing to add, drop or alter on a migrated database."""
    migrate.upgrade(settings)
    assert schema_diff(engine) == []


def test_active_conversations_index_is_partial(settings: Settings, engine: sa.Engine) -> None:
    """Autogenerate does not compare index predicates, so check the partial index's WHERE by hand."""
    migrate.upgrade(settings)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_conversations_active'"))
        else:
            sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'ix_conversations_active'"))
        definition = sql.scalar_one()
    assert "WHERE" in definition.upper()
    assert "active" in definition


def test_hot_path_routines_come_and_go_with_0007(settings: Settings, engine: sa.Engine) -> None:
    """PostgreSQL: the append and history functions exist at 0007, callable by the application role only."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs the hot path's statements from Python")

    def routines() -> dict[str, tuple[bool, bool]]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT proname, has_function_privilege(:role, oid, 'EXECUTE'), "
                    "has_function_privilege('public', oid, 'EXECUTE') FROM pg_proc "
                    "WHERE proname IN ('mnemostore_append_messages', 'mnemostore_history')"
                ),
                {"role": settings.pg_app_role},
            ).all()
        return {row[0]: (row[1], row[2]) for row in rows}

    migrate.upgrade(settings, "0007")
    assert routines() == {
        "mnemostore_append_messages": (True, False),
        "mnemostore_history": (True, False),
    }
    migrate.downgrade(settings, "0006")
    assert routines() == {}


def test_admin_role_policies_come_and_go_with_0008(settings: Settings, engine: sa.Engine) -> None:
    """PostgreSQL: 0008 binds each table's two policies to roles (application: its tenant; admin: everything) in
    place of the ``mnemostore.admin`` setting; its downgrade puts the setting-based policies back."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no roles nor row-level security")

    def policies() -> set[tuple[str, tuple[str, ...], bool]]:
        """(policy, roles it applies to, whether it reads the mnemostore.admin setting), over every table."""
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT polname, ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END "
                    "FROM unnest(polroles) AS r), pg_get_expr(polqual, polrelid) LIKE '%mnemostore.admin%' "
                    "FROM pg_policy"
                )
            ).all()
        return {(row[0], tuple(row[1]), row[2]) for row in rows}

    app, admin = settings.pg_app_role, settings.pg_admin_role
    migrate.upgrade(settings, "0007")
    before = policies()
    assert before == {("tenant_isolation", ("public",), False), ("admin_access", ("public",), True)}
    migrate.upgrade(settings, "0008")
    assert policies() == {("tenant_isolation", (app,), False), ("admin_access", (admin,), False)}
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT rolsuper, rolbypassrls, rolcanlogin, has_table_privilege(:role, 'messages', 'DELETE') "
                "FROM pg_roles WHERE rolname = :role"
            ),
            {"role": admin},
        ).one()
    # NOLOGIN, except on a Citus cluster where another database at 0013 let it log in (roles are the server's).
    assert tuple(row) == (False, False, _citus(engine), True)
    migrate.downgrade(settings, "0007")
    assert policies() == before
    with engine.connect() as conn:
        # The role stays (other databases of the server may use it), without its privileges here.
        granted = conn.execute(sa.text("SELECT has_table_privilege(:r, 'messages', 'SELECT')"), {"r": admin})
        assert granted.scalar_one() is False
    migrate.upgrade(settings)
    assert_schema_complete(engine)


def test_0009_backfills_each_vectors_owner(settings: Settings, engine: sa.Engine) -> None:
    """Vectors written before 0009 get their owner from their items: a memory's user, a message's conversation's
    user, none for knowledge chunks and memories of no user; the downgrade drops the column and its index."""
    migrate.upgrade(settings)
    with MnemoStore(settings=Settings(database_url=settings.database_url, embedder="none")) as store:
        t = store.tenant(store.create_tenant("owners").id)
        alice, bob = (t.create_user(display_name=name).id for name in ("alice", "bob"))
        items = {
            ("memory", t.store_memory("alice's", user_id=alice, dedup=False).id): alice,
            ("memory", t.store_memory("no one's", dedup=False).id): None,
            ("message", t.add_message(t.create_conversation(bob).id, role="user", content="bob's").id): bob,
            ("knowledge", t.upsert_knowledge_chunks("doc", [{"external_id": "1", "content": "c"}])[0].id): None,
        }
    migrate.downgrade(settings, "0008")
    with engine.begin() as conn:
        assert "owner_id" not in {c["name"] for c in sa.inspect(conn).get_columns("embeddings")}
        # The table as 0008 had it (the model's has owner_id).
        old = sa.table(
            "embeddings",
            *(sa.column(name, sa.Uuid()) for name in ("tenant_id", "item_id")),
            *(sa.column(name, sa.String()) for name in ("item_kind", "model")),
            *(sa.column(name, sa.Integer()) for name in ("dimension", "seq")),
            sa.column("embedded_at", sa.DateTime()),
        )
        conn.execute(
            sa.insert(old),
            [
                {"tenant_id": t.tenant_id, "item_kind": kind, "item_id": item, "model": "m", "dimension": 3,
                 "seq": seq, "embedded_at": datetime(2026, 12, 5)}
                for seq, (kind, item) in enumerate(items, start=1)
            ],
        )  # fmt: skip
    migrate.upgrade(settings)  # through 0009, to the head the models describe
    with engine.connect() as conn:
        e = embeddings.c
        rows = conn.execute(sa.select(e.item_kind, e.item_id, e.owner_id)).all()
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("embeddings")}
    assert {(kind, item): owner for kind, item, owner in rows} == items
    assert "ix_embeddings_owner" in indexes
    assert schema_diff(engine) == []


def test_0010_counts_start_at_zero_and_the_downgrade_drops_them(settings: Settings, engine: sa.Engine) -> None:
    """Memories written before 0010 have no recall (0, never), their versions no tier nor reason, tenants any
    model; the downgrade drops the five columns and leaves the rows."""
    migrate.upgrade(settings, "0009")
    tid = uuid.uuid4()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT set_config('mnemostore.admin', 'on', true)"))
        now = datetime(2026, 12, 6, tzinfo=UTC)
        # Only the columns 0009 has: Core renders the values given, nothing else.
        conn.execute(
            sa.insert(tables.tenants).values(
                id=tid, name="before-0010", plan="free", status="active", config={}, created_at=now, updated_at=now
            )
        )
        conn.execute(
            sa.insert(tables.memories).values(
                tenant_id=tid, id=tid, content="old", kind="fact", tier="short_term", importance=0.5,
                source_message_ids=[], compression_level=0, metadata={}, created_at=now, updated_at=now,
            )
        )  # fmt: skip
        conn.execute(
            sa.insert(tables.memory_versions).values(
                tenant_id=tid, id=tid, memory_id=tid, content="older", importance=0.4, metadata={}, created_at=now
            )
        )
    migrate.upgrade(settings)
    assert schema_diff(engine) == []
    with MnemoStore(settings=Settings(database_url=settings.database_url, embedder="none")) as store:
        t = store.tenant(tid)
        memory = t.get_memory_or_raise(tid)
        assert (memory.recall_count, memory.last_recalled_at) == (0, None)
        [version] = t.get_memory_history(tid)
        assert (version.content, version.tier, version.reason) == ("older", None, None)
        assert store.get_tenant_or_raise(tid).quotas.allowed_models is None
    migrate.downgrade(settings, "0009")
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        columns = {table: {c["name"] for c in inspector.get_columns(table)} for table in ("memories", "tenants")}
        assert "recall_count" not in columns["memories"] and "allowed_models" not in columns["tenants"]
        assert "reason" not in {c["name"] for c in inspector.get_columns("memory_versions")}
        if engine.dialect.name == "sqlite":
            assert conn.execute(sa.text("SELECT count(*) FROM memories")).scalar() == 1


def _fulltext_ids(engine: sa.Engine, word: str) -> set[uuid.UUID]:
    """Messages whose full-text index holds ``word``, read straight from the index (any revision from 0003)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT set_config('mnemostore.admin', 'on', true)"))
            query = "SELECT id FROM messages WHERE search_tsv @@ to_tsquery('english', :word)"
        else:
            query = (
                "SELECT m.id FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid "
                "WHERE messages_fts MATCH :word"
            )
        return {uuid.UUID(str(row[0])) for row in conn.execute(sa.text(query), {"word": word})}


def test_0012_indexes_the_authors_of_existing_messages(settings: Settings, engine: sa.Engine) -> None:
    """Messages written before 0012 are found by their author's name after it (full text), and those with a
    vector the store computed are queued to be embedded again with their author; the downgrade takes the authors
    out of the full-text index and keeps the messages."""
    migrate.upgrade(settings)
    with MnemoStore(settings=Settings(database_url=settings.database_url, embedder="none")) as store:
        t = store.tenant(store.create_tenant("authors").id)
        conversation = t.create_conversation(t.create_user(display_name="u").id).id
        said, plain, brought = (
            t.add_message(conversation, role="user", content=text, metadata=metadata).id
            for text, metadata in (
                ("the parcel arrived", {"author": "Zebulon"}),
                ("no author here", {}),
                ("my own vector", {"author": "Zebulon"}),
            )
        )
    migrate.downgrade(settings, "0011")
    assert _fulltext_ids(engine, "zebulon") == set()
    assert _fulltext_ids(engine, "parcel") == {said}
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT set_config('mnemostore.admin', 'on', true)"))
        # Without the vector column, whose type depends on pgvector (the store's vectors of no embedder).
        rows = sa.table(
            "embeddings",
            *(sa.column(name, sa.Uuid()) for name in ("tenant_id", "item_id")),
            *(sa.column(name, sa.String()) for name in ("item_kind", "model")),
            *(sa.column(name, sa.Integer()) for name in ("dimension", "seq")),
            sa.column("embedded_at", sa.DateTime(timezone=True)),
            sa.column("supplied", sa.Boolean()),
        )
        conn.execute(
            sa.insert(rows),
            [
                {"tenant_id": t.tenant_id, "item_kind": "message", "item_id": item, "model": "m", "dimension": 3,
                 "seq": seq, "embedded_at": datetime(2026, 12, 9, tzinfo=UTC), "supplied": supplied}
                for seq, (item, supplied) in enumerate(((said, False), (plain, False), (brought, True)), start=1)
            ],
        )  # fmt: skip
    migrate.upgrade(settings)
    assert schema_diff(engine) == []
    assert _fulltext_ids(engine, "zebulon") == {said, brought}
    assert _fulltext_ids(engine, "parcel") == {said}
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT set_config('mnemostore.admin', 'on', true)"))
        jobs = conn.execute(sa.select(tables.index_jobs.c.item_id, tables.index_jobs.c.state)).all()
    assert jobs == [(said, "pending")]  # the caller's vector stays the caller's; no author, nothing to redo
    with MnemoStore(settings=Settings(database_url=settings.database_url, embedder="none")) as store:
        hits = store.tenant(t.tenant_id).search("Zebulon parcel", mode="fulltext", kinds=("messages",))
        assert [hit.id for hit in hits] == [said, brought]
        assert hits[0].content == "the parcel arrived"


# -- nothing migrates implicitly ----------------------------------------------------------------------------------


async def test_async_store_on_unmigrated_database_refuses(settings: Settings, engine: sa.Engine) -> None:
    store = AsyncMnemoStore(settings.database_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="mnemostore db upgrade") as raised:
            await store.create_tenant("acme")
        assert raised.value.current is None
        assert raised.value.head == HEAD
        with pytest.raises(SchemaOutOfDate, match="mnemostore db upgrade"):
            await store.check_schema()
        with pytest.raises(SchemaOutOfDate):
            await store.list_tenants()
    finally:
        await store.close()
    assert table_names(engine) - {"alembic_version"} == set()


def test_sync_store_on_unmigrated_database_refuses(settings: Settings, engine: sa.Engine) -> None:
    store = MnemoStore(settings.database_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="mnemostore db upgrade"):
            store.create_tenant("acme")
    finally:
        store.close()
    assert table_names(engine) - {"alembic_version"} == set()


async def test_store_on_older_schema_refuses(settings: Settings, engine: sa.Engine) -> None:
    """A database at an unknown or older revision is out of date too, and says where it is."""
    migrate.upgrade(settings)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    store = AsyncMnemoStore(settings.database_url)
    try:
        with pytest.raises(SchemaOutOfDate, match=r"at 0000.*mnemostore db upgrade"):
            await store.create_tenant("acme")
    finally:
        await store.close()
    with pytest.raises(MigrationError, match="0000"):
        migrate.get_migration_status(settings)


def test_import_and_construction_do_no_io(empty_database_url: str, backend: str, tmp_path: Path) -> None:
    """``import mnemostore`` and creating stores touch no database, not even the default SQLite file."""
    code = (
        "import mnemostore\n"
        "mnemostore.MnemoStore()\n"
        "mnemostore.AsyncMnemoStore()\n"
        "mnemostore.MnemoStore(settings=mnemostore.Settings()).tenant(mnemostore.domain.new_id())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MNEMOSTORE_DATABASE_URL"}}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # Default URL (sqlite:///mnemostore.db in the working directory): the file must not appear.
    subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True, timeout=60)
    assert list(cwd.iterdir()) == []
    # The test database, named by the environment.
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**env, "MNEMOSTORE_DATABASE_URL": empty_database_url},
        check=True,
        timeout=60,
    )
    if backend == "sqlite":
        assert not Path(sa.make_url(empty_database_url).database or "").exists()
    else:
        eng = sa.create_engine(Settings(database_url=empty_database_url).database_url, poolclass=sa.NullPool)
        try:
            assert table_names(eng) == set()
        finally:
            eng.dispose()
    assert list(cwd.iterdir()) == []


# -- the store's own migration methods ----------------------------------------------------------------------------


async def test_store_migrate_then_rollback_to_base(settings: Settings, engine: sa.Engine) -> None:
    async with AsyncMnemoStore(settings.database_url) as store:
        status = await store.get_migration_status()
        assert (status.current, [r.revision for r in status.pending]) == (None, REVISIONS)

        await store.migrate()
        tenant = await store.create_tenant("acme")
        assert (await store.get_tenant(tenant.id)) == tenant
        assert (await store.get_migration_status()).up_to_date

        await store.rollback_to_version("base")
        assert (await store.get_migration_status()).current is None
        assert table_names(engine) - {"alembic_version"} == set()
        # The store noticed: it refuses instead of failing on missing tables, and recreates nothing.
        with pytest.raises(SchemaOutOfDate, match="mnemostore db upgrade"):
            await store.get_tenant(tenant.id)
        assert table_names(engine) - {"alembic_version"} == set()

        await store.migrate()
        assert await store.get_tenant(tenant.id) is None  # the rollback dropped the data
        assert (await store.create_tenant("acme")).name == "acme"


async def test_store_whose_schema_disappears_raises_schema_error(settings: Settings) -> None:
    """A store that checked the schema once, then sees it rolled back by someone else, still fails cleanly."""
    migrate.upgrade(settings)
    async with AsyncMnemoStore(settings.database_url) as store:
        tenant = await store.create_tenant("acme")
        migrate.downgrade(settings, "base")
        with pytest.raises(SchemaError, match="mnemostore db upgrade") as raised:
            await store.get_tenant(tenant.id)
        assert isinstance(raised.value.__cause__, sa.exc.DBAPIError)  # the driver error is chained, not raised


def test_sync_store_migrate_and_rollback(settings: Settings, engine: sa.Engine) -> None:
    with MnemoStore(settings.database_url) as store:
        store.migrate()
        assert store.get_migration_status().up_to_date
        store.create_tenant("acme")
        store.rollback_to_version("base")
        assert store.get_migration_status().current is None
        with pytest.raises(SchemaOutOfDate):
            store.list_tenants()
    assert table_names(engine) - {"alembic_version"} == set()


# -- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("revision", ["9999", "not-a-revision", "0001@9999"])
def test_unknown_revision_is_a_migration_error(settings: Settings, engine: sa.Engine, revision: str) -> None:
    with pytest.raises(MigrationError, match="upgrade"):
        migrate.upgrade(settings, revision)
    assert table_names(engine) - {"alembic_version"} == set()
    migrate.upgrade(settings)
    with pytest.raises(MigrationError, match="downgrade"):
        migrate.downgrade(settings, revision)
    assert_schema_complete(engine)


async def test_store_unknown_revision_is_a_migration_error(settings: Settings) -> None:
    async with AsyncMnemoStore(settings.database_url) as store:
        with pytest.raises(MigrationError):
            await store.migrate("9999")
        await store.migrate()
        with pytest.raises(MigrationError):
            await store.rollback_to_version("9999")
        assert (await store.get_migration_status()).current == HEAD


def _unreachable_url(kind: str, tmp_path: Path) -> str:
    if kind == "postgres":
        # Port 1: nothing listens there, so the connection is refused at once.
        return "postgresql://postgres:s3cret-pw@127.0.0.1:1/mnemostore"
    return f"sqlite:///{tmp_path / 'no-such-directory' / 'mnemostore.db'}"


def _check_unavailable(error: BaseException, kind: str) -> None:
    assert type(error) is BackendUnavailable
    assert "cannot use the" in str(error) and "nothing was written" in str(error)
    if kind == "sqlite":  # a file: no server to check
        assert "SQLite file" in str(error) and "server" not in str(error)
    else:
        assert "the server is running" in str(error)
    assert "s3cret-pw" not in str(error)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_unreachable_database_is_backend_unavailable(kind: str, tmp_path: Path) -> None:
    settings = Settings(database_url=_unreachable_url(kind, tmp_path), connect_timeout=2)
    for call in (
        lambda: migrate.get_migration_status(settings),
        lambda: migrate.upgrade(settings),
        lambda: migrate.downgrade(settings, "base"),
    ):
        with pytest.raises(MnemostoreError) as raised:
            call()
        _check_unavailable(raised.value, kind)

    async with AsyncMnemoStore(settings=settings) as store:
        with pytest.raises(MnemostoreError) as raised:
            await store.create_tenant("acme")
        _check_unavailable(raised.value, kind)
        with pytest.raises(MnemostoreError) as raised:
            await store.get_migration_status()
        _check_unavailable(raised.value, kind)
        with pytest.raises(MnemostoreError) as raised:
            await store.tenant("00000000-0000-0000-0000-000000000001").get_user("00000000-0000-0000-0000-000000000002")
        _check_unavailable(raised.value, kind)

    with MnemoStore(settings=settings) as sync_store:
        with pytest.raises(MnemostoreError) as raised:
            sync_store.create_tenant("acme")
        _check_unavailable(raised.value, kind)
    assert not (tmp_path / "no-such-directory").exists()


@pytest.mark.parametrize(
    "url",
    ["mysql://root@localhost/mnemostore", "mongodb://localhost", "http://example.com/db", "", "   "],
)
async def test_bad_database_url_is_a_configuration_error(url: str) -> None:
    """The message names the URL forms, not where the URL came from (an argument or a variable: the CLI, which
    knows, says which)."""
    forms = r"database URL .*sqlite:///path\.db .*postgresql://"
    with pytest.raises(ConfigurationError, match=forms):
        Settings(database_url=url)
    with pytest.raises(ConfigurationError, match=forms):
        AsyncMnemoStore(url)
    with pytest.raises(ConfigurationError, match=forms):
        MnemoStore(url)


def test_bad_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNEMOSTORE_DATABASE_URL", "mysql://root@localhost/mnemostore")
    with pytest.raises(ConfigurationError, match="scheme 'mysql'"):
        AsyncMnemoStore()
    with pytest.raises(ConfigurationError, match="scheme 'mysql'"):
        MnemoStore()


async def test_explicit_url_wins_over_a_bad_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Arguments win over the environment: a malformed MNEMOSTORE_DATABASE_URL is never even read."""
    monkeypatch.setenv("MNEMOSTORE_DATABASE_URL", "mysql://root@localhost/mnemostore")
    url = f"sqlite:///{tmp_path / 'explicit.db'}"
    async_store, sync_store = AsyncMnemoStore(url), MnemoStore(url)
    try:
        assert async_store.settings.database_url == url
        assert sync_store.settings.database_url == url
    finally:
        await async_store.close()
        sync_store.close()


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite+aiosqlite:///x.db", "sqlite:///x.db"),
        ("SQLITE:///x.db", "sqlite:///x.db"),
    ],
)
def test_supported_schemes_are_normalised(given: str, normalised: str) -> None:
    assert Settings(database_url=given).database_url == normalised
