"""Encryption of sensitive fields at rest, on SQLite and PostgreSQL.

What is checked against the raw rows (read with plain SQL, past the store): emails, secret message metadata values
and tool parameters hold no plaintext. What is checked through the API: everything comes back in clear, lookups
by email and their uniqueness still work, key rotation re-encrypts so old keys can go, and a missing or wrong key
is a clear EncryptionKeyError. Tests that rotate get a database of their own (rotation rewrites every tenant).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from mnemostore import (
    AsyncMnemoStore,
    ConfigurationError,
    ConflictError,
    EncryptionKeyError,
    MigrationError,
    MnemoStore,
    Settings,
)
from mnemostore.cli.main import app
from mnemostore.ops import migrate
from mnemostore.store._crypto import FieldCodec, envelope_key_id


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


K1, K2, INDEX = f"k1:{new_key()}", f"k2:{new_key()}", new_key()
SECRET_KEYS = ["api_key", "ssn"]


def open_store(url: str, *keys: str, **overrides: Any) -> AsyncMnemoStore:
    """A store with these encryption keys (none: clear mode), and no cache, so every read hits the rows."""
    if keys:
        overrides.setdefault("blind_index_key", INDEX)
    return AsyncMnemoStore(
        url, encryption_keys=list(keys), secret_metadata_keys=SECRET_KEYS, cache_enabled=False, **overrides
    )


@pytest.fixture
async def sealed(database_url: str) -> AsyncIterator[AsyncMnemoStore]:
    store = open_store(database_url, K1)
    yield store
    await store.close()


@pytest.fixture
def fresh_url(empty_database_url: str) -> str:
    migrate.upgrade(Settings(database_url=empty_database_url))
    return empty_database_url


@pytest.fixture
def raw(database_url: str) -> Iterator[sa.Engine]:
    """Plain SQL as the database owner: no store, no codec, no tenant scope."""
    engine = sa.create_engine(Settings(database_url=database_url).database_url, poolclass=sa.NullPool)
    yield engine
    engine.dispose()


def raw_rows(url_or_engine: str | sa.Engine, sql: str, **params: Any) -> list[Any]:
    engine = (
        sa.create_engine(Settings(database_url=url_or_engine).database_url, poolclass=sa.NullPool)
        if isinstance(url_or_engine, str)
        else url_or_engine
    )
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def json_value(value: Any) -> Any:
    """A JSON column read raw: SQLite hands out its text, psycopg the decoded value."""
    return json.loads(value) if isinstance(value, str) and value[:1] in '{["' else value


async def make_data(store: AsyncMnemoStore, name: str | None = None) -> dict[str, Any]:
    """A user with an email, a message with secret and plain metadata, a tool execution: their ids."""
    tenant = await store.create_tenant(name or f"enc-{uuid.uuid4().hex[:10]}")
    t = store.tenant(tenant.id)
    user = await t.create_user(email="ada@example.com", display_name="Ada")
    conv = await t.create_conversation(user.id)
    message = await t.add_message(
        conv.id, role="user", content="hi", metadata={"api_key": "sk-live-123", "ssn": [1, 2], "topic": "greeting"}
    )
    tool = await t.record_tool_execution("search", conversation_id=conv.id, parameters={"password": "hunter2"})
    return {"tenant": tenant.id, "user": user.id, "conversation": conv.id, "message": message.id, "tool": tool.id}


# -- at rest and through the API ------------------------------------------------------------------------------


async def test_raw_rows_hold_no_plaintext(sealed: AsyncMnemoStore, raw: sa.Engine) -> None:
    ids = await make_data(sealed)
    [(email, email_hash)] = raw_rows(
        raw, "SELECT email, email_hash FROM users WHERE id = :id", id=_db_id(raw, ids["user"])
    )
    assert envelope_key_id(email) == "k1" and "ada" not in email
    assert len(email_hash) == 64 and int(email_hash, 16) >= 0
    [(metadata,)] = raw_rows(raw, "SELECT metadata FROM messages WHERE id = :id", id=_db_id(raw, ids["message"]))
    metadata = json_value(metadata)
    assert envelope_key_id(metadata["api_key"]) == "k1" and envelope_key_id(metadata["ssn"]) == "k1"
    assert metadata["topic"] == "greeting"  # not listed as secret: stays readable (and queryable)
    assert "sk-live" not in json.dumps(metadata)
    [(parameters,)] = raw_rows(
        raw, "SELECT parameters FROM tool_executions WHERE id = :id", id=_db_id(raw, ids["tool"])
    )
    assert envelope_key_id(json_value(parameters)) == "k1"
    assert "hunter2" not in str(parameters)


async def test_the_api_returns_plaintext(sealed: AsyncMnemoStore) -> None:
    ids = await make_data(sealed)
    t = sealed.tenant(ids["tenant"])
    user = await t.get_user(ids["user"])
    assert user is not None and user.email == "ada@example.com"
    assert (await t.list_users()).items[0].email == "ada@example.com"
    history = await t.get_conversation_history(ids["conversation"])
    assert history.messages[0].metadata == {"api_key": "sk-live-123", "ssn": [1, 2], "topic": "greeting"}
    message = await t.get_message(ids["message"])
    assert message is not None and message.metadata["api_key"] == "sk-live-123"
    [tool] = (await t.list_tool_executions()).items
    assert tool.parameters == {"password": "hunter2"}
    export = await t.export_conversation(ids["conversation"])
    assert export["messages"][0]["metadata"]["api_key"] == "sk-live-123"
    updated = await t.update_user(ids["user"], display_name="Ada L.")
    assert updated.email == "ada@example.com"


async def test_email_lookup_and_uniqueness(sealed: AsyncMnemoStore, raw: sa.Engine) -> None:
    ids = await make_data(sealed)
    t = sealed.tenant(ids["tenant"])
    found = await t.get_user_by_email("ada@example.com")
    assert found is not None and found.id == ids["user"]
    assert await t.get_user_by_email("ADA@example.com") is None  # exact match, as in clear
    with pytest.raises(ConflictError):
        await t.create_user(email="ada@example.com")
    assert (await t.get_or_create_user_by_email("ada@example.com")).id == ids["user"]
    # Another tenant may use the same email, and gets another hash (no cross-tenant correlation).
    other = await make_data(sealed)
    hashes = raw_rows(
        raw,
        "SELECT email_hash FROM users WHERE tenant_id IN (:a, :b)",
        a=_db_id(raw, ids["tenant"]),
        b=_db_id(raw, other["tenant"]),
    )
    assert len({h for (h,) in hashes}) == 2
    # Changing and clearing the email moves and clears the hash.
    bob = await t.create_user(email="bob@example.com")
    with pytest.raises(ConflictError):
        await t.update_user(bob.id, email="ada@example.com")
    await t.update_user(bob.id, email="robert@example.com")
    assert await t.get_user_by_email("bob@example.com") is None
    assert (await t.get_user_by_email("robert@example.com")).id == bob.id  # type: ignore[union-attr]
    await t.update_user(bob.id, email=None)
    assert await t.get_user_by_email("robert@example.com") is None
    [(email, email_hash)] = raw_rows(raw, "SELECT email, email_hash FROM users WHERE id = :id", id=_db_id(raw, bob.id))
    assert (email, email_hash) == (None, None)


async def test_identity_users_with_email_are_sealed(sealed: AsyncMnemoStore, raw: sa.Engine) -> None:
    tenant = await sealed.create_tenant(f"enc-{uuid.uuid4().hex[:10]}")
    t = sealed.tenant(tenant.id)
    user = await t.get_or_create_user_by_identity("discord", "42", email="grace@example.com")
    assert (await t.get_user_by_identity("discord", "42")).email == "grace@example.com"  # type: ignore[union-attr]
    [(email,)] = raw_rows(raw, "SELECT email FROM users WHERE id = :id", id=_db_id(raw, user.id))
    assert envelope_key_id(email) == "k1"


def test_sync_store_seals_and_opens(database_url: str, raw: sa.Engine) -> None:
    with MnemoStore(
        database_url, encryption_keys=[K1], blind_index_key=INDEX, secret_metadata_keys=SECRET_KEYS, cache_enabled=False
    ) as store:
        t = store.tenant(store.create_tenant(f"enc-{uuid.uuid4().hex[:10]}").id)
        user = t.create_user(email="sync@example.com")
        assert t.get_user_by_email("sync@example.com") == user
        conv = t.create_conversation(user.id)
        t.add_message(conv.id, role="user", content="x", metadata={"api_key": "k"})
        assert t.get_conversation_history(conv.id).messages[0].metadata == {"api_key": "k"}
    [(email,)] = raw_rows(raw, "SELECT email FROM users WHERE id = :id", id=_db_id(raw, user.id))
    assert envelope_key_id(email) == "k1"


# -- keys: missing, wrong, rotated --------------------------------------------------------------------------------


async def test_missing_or_wrong_key_is_a_clear_error(database_url: str, sealed: AsyncMnemoStore) -> None:
    ids = await make_data(sealed)
    wrong_k1 = f"k1:{new_key()}"
    for keys, fragment in (((), "'k1'"), ((K2,), "'k1'"), ((wrong_k1,), "does not decrypt with the key")):
        store = open_store(database_url, *keys)
        try:
            t = store.tenant(ids["tenant"])
            with pytest.raises(EncryptionKeyError, match=fragment) as raised:
                await t.get_user(ids["user"])
            assert "MNEMOSTORE_ENCRYPTION_KEYS" in str(raised.value)
            assert isinstance(raised.value, ConfigurationError)
            with pytest.raises(EncryptionKeyError):
                await t.get_conversation_history(ids["conversation"])
            with pytest.raises(EncryptionKeyError):
                await t.list_tool_executions()
        finally:
            await store.close()
    keyless = open_store(database_url)
    try:
        await keyless.tenant(ids["tenant"]).delete_message(ids["message"])  # deleting opens nothing: no key needed
    finally:
        await keyless.close()


async def test_ciphertext_does_not_open_in_another_tenant(sealed: AsyncMnemoStore, raw: sa.Engine) -> None:
    """The tenant is authenticated with each value: a ciphertext copied into another tenant's row fails."""
    a, b = await make_data(sealed), await make_data(sealed)
    [(email,)] = raw_rows(raw, "SELECT email FROM users WHERE id = :id", id=_db_id(raw, a["user"]))
    with raw.begin() as conn:
        conn.execute(sa.text("UPDATE users SET email = :e WHERE id = :id"), {"e": email, "id": _db_id(raw, b["user"])})
    with pytest.raises(EncryptionKeyError, match="does not decrypt"):
        await sealed.tenant(b["tenant"]).get_user(b["user"])


async def test_rotation_reencrypts_and_old_keys_can_go(fresh_url: str) -> None:
    async with open_store(fresh_url, K1) as old:
        ids = await make_data(old)

    async with open_store(fresh_url, K2, K1) as rotated:
        t = rotated.tenant(ids["tenant"])
        assert (await t.get_user(ids["user"])).email == "ada@example.com"  # type: ignore[union-attr]  # old rows open
        newer = await t.create_user(email="new@example.com")  # new writes use the first key
        assert _email_key(fresh_url, newer.id) == "k2"
        assert _email_key(fresh_url, ids["user"]) == "k1"

        report = await rotated.rotate_keys(batch_size=1)  # batches of one: the keyset paging is exercised
        assert report.key_id == "k2"
        assert report.scanned == {"users": 2, "messages": 1, "tool_executions": 1}
        assert report.rewritten == {"users": 1, "messages": 1, "tool_executions": 1}
        assert (await rotated.rotate_keys()).total_rewritten == 0  # idempotent

    assert _email_key(fresh_url, ids["user"]) == "k2"
    [(metadata,)] = raw_rows(fresh_url, "SELECT metadata FROM messages")
    assert {envelope_key_id(json_value(metadata)[key]) for key in SECRET_KEYS} == {"k2"}
    only_new = open_store(fresh_url, K2)  # k1 removed
    try:
        t = only_new.tenant(ids["tenant"])
        assert (await t.get_user_by_email("ada@example.com")).id == ids["user"]  # type: ignore[union-attr]
        assert (await t.get_message(ids["message"])).metadata["api_key"] == "sk-live-123"  # type: ignore[union-attr]
        assert ((await t.list_tool_executions()).items)[0].parameters == {"password": "hunter2"}
    finally:
        await only_new.close()


async def test_turning_encryption_on_for_existing_clear_rows(fresh_url: str) -> None:
    """Rows written in clear stay readable and findable, cannot be duplicated, and rotate-keys seals them."""
    async with open_store(fresh_url) as clear:
        ids = await make_data(clear)
    [(email, email_hash)] = raw_rows(fresh_url, "SELECT email, email_hash FROM users")
    assert (email, email_hash) == ("ada@example.com", None)  # exactly as before encryption existed

    store = open_store(fresh_url, K1)
    try:
        t = store.tenant(ids["tenant"])
        assert (await t.get_user_by_email("ada@example.com")).id == ids["user"]  # type: ignore[union-attr]
        with pytest.raises(ConflictError):
            await t.create_user(email="ada@example.com")
        report = await store.rotate_keys()
        assert report.rewritten == {"users": 1, "messages": 1, "tool_executions": 1}
        assert _email_key(fresh_url, ids["user"]) == "k1"
        assert (await t.get_user_by_email("ada@example.com")).id == ids["user"]  # type: ignore[union-attr]
        assert (await t.get_message(ids["message"])).metadata["ssn"] == [1, 2]  # type: ignore[union-attr]
        with pytest.raises(ConflictError):
            await t.create_user(email="ada@example.com")
    finally:
        await store.close()
    [(metadata,)] = raw_rows(fresh_url, "SELECT metadata FROM messages")
    assert "sk-live" not in str(metadata)


async def test_rotate_keys_without_keys_is_a_configuration_error(database_url: str) -> None:
    store = open_store(database_url)
    try:
        with pytest.raises(ConfigurationError, match="MNEMOSTORE_ENCRYPTION_KEYS"):
            await store.rotate_keys()
    finally:
        await store.close()


def test_rotate_keys_command(fresh_url: str) -> None:
    env = {
        "MNEMOSTORE_ENCRYPTION_KEYS": f"{K2},{K1}",
        "MNEMOSTORE_BLIND_INDEX_KEY": INDEX,
        "MNEMOSTORE_SECRET_METADATA_KEYS": ",".join(SECRET_KEYS),
    }
    with MnemoStore(fresh_url) as store:  # clear rows, written before encryption
        t = store.tenant(store.create_tenant("acme").id)
        t.create_user(email="ada@example.com")
    result = CliRunner().invoke(app, ["--database-url", fresh_url, "rotate-keys", "--batch-size", "10"], env=env)
    assert result.exit_code == 0, result.output
    assert "users" in result.stdout and "'k2'" in result.stdout
    [(email,)] = raw_rows(fresh_url, "SELECT email FROM users")
    assert envelope_key_id(email) == "k2"
    result = CliRunner().invoke(
        app, ["--database-url", fresh_url, "rotate-keys"], env={"MNEMOSTORE_ENCRYPTION_KEYS": ""}
    )
    assert result.exit_code == 1 and "error: no encryption key is configured" in result.stderr


# -- settings and schema ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "fragment"),
    [
        ("k1", "not key-id:base64-key"),
        ("k1:bm90IGEga2V5", "not 16, 24 or 32 bytes"),
        (f"bad id:{new_key()}", "not key-id:base64-key"),
        (f"{K1},{K1}", "twice"),
    ],
)
def test_malformed_keys_are_configuration_errors(keys: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as raised:
        Settings(encryption_keys=keys, blind_index_key=INDEX)
    assert K1.partition(":")[2] not in str(raised.value)  # never echo key material


def test_keys_need_a_blind_index_key() -> None:
    with pytest.raises(ConfigurationError, match="MNEMOSTORE_BLIND_INDEX_KEY"):
        Settings(encryption_keys=[K1])
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        Settings(encryption_keys=[K1], blind_index_key="c2hvcnQ=")


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNEMOSTORE_ENCRYPTION_KEYS", f" {K2} , {K1} ")
    monkeypatch.setenv("MNEMOSTORE_BLIND_INDEX_KEY", INDEX)
    monkeypatch.setenv("MNEMOSTORE_SECRET_METADATA_KEYS", '["api_key", "ssn"]')
    settings = Settings()
    assert [kid for kid, _ in settings.encryption_keyring()] == ["k2", "k1"]
    assert settings.secret_metadata_keys == SECRET_KEYS
    assert K2 not in repr(settings) and INDEX not in repr(settings)
    codec = FieldCodec.from_settings(settings)
    assert codec.current_key_id == "k2" and codec.encrypts


def test_migration_0002_keeps_data_and_refuses_to_drop_encrypted_emails(empty_database_url: str) -> None:
    settings = Settings(database_url=empty_database_url)
    migrate.upgrade(settings, "0001")
    engine = sa.create_engine(settings.database_url, poolclass=sa.NullPool)
    tenant_id = uuid.uuid4()
    try:
        with engine.begin() as conn:
            tid = tenant_id.hex if engine.dialect.name == "sqlite" else str(tenant_id)
            conn.execute(
                sa.text(
                    "INSERT INTO tenants (id, name, plan, status, config, created_at, updated_at) "
                    "VALUES (:id, 'acme', 'free', 'active', '{}', '2026-01-01', '2026-01-01')"
                ),
                {"id": tid},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO users (tenant_id, id, email, preferences, metadata, created_at, updated_at) "
                    "VALUES (:t, :id, 'ada@example.com', '{}', '{}', '2026-01-01', '2026-01-01')"
                ),
                {"t": tid, "id": tid},
            )
        migrate.upgrade(settings)
        with MnemoStore(settings=settings, cache_enabled=False) as store:
            assert store.tenant(tenant_id).get_user_by_email("ada@example.com") is not None
        migrate.downgrade(settings, "0001")  # clear emails: nothing is lost
        migrate.upgrade(settings)
        with MnemoStore(settings=settings, encryption_keys=[K1], blind_index_key=INDEX, cache_enabled=False) as store:
            store.rotate_keys()
        with pytest.raises(MigrationError, match="1 users have an encrypted email"):
            migrate.downgrade(settings, "0001")
        assert migrate.get_migration_status(settings).current == "0002"
    finally:
        engine.dispose()


# -- helpers ------------------------------------------------------------------------------------------------------


def _db_id(engine: sa.Engine, value: uuid.UUID) -> str:
    """A UUID as each backend stores it (SQLite: 32 hex digits)."""
    return value.hex if engine.dialect.name == "sqlite" else str(value)


def _email_key(url: str, user_id: uuid.UUID) -> str | None:
    engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
    try:
        [(email,)] = raw_rows(engine, "SELECT email FROM users WHERE id = :id", id=_db_id(engine, user_id))
    finally:
        engine.dispose()
    return envelope_key_id(email)
