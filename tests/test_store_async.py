"""Behaviour of the store API, on SQLite and PostgreSQL (the ``astore`` fixture is parametrised over both).

Every test gets a fresh tenant (``atenant``), so tests never see each other's rows.

(async; ``tests/test_store.py`` is generated from this file by ``tools/async_to_sync.py``: only ``await`` calls on
the store here, no asyncio.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mnemostore import (
    ApiKeyNotFound,
    AsyncMnemoStore,
    AsyncTenantStore,
    CheckpointNotFound,
    ConflictError,
    ContentTooLarge,
    ConversationNotFound,
    ConversationStatus,
    DuplicateIdentity,
    HistoryPage,
    IdempotencyConflict,
    InvalidCursor,
    InvalidInput,
    InvalidMetadata,
    InvalidText,
    KnowledgeChunkNotFound,
    MemoryKind,
    MemoryNotFound,
    MemoryTier,
    MessageNotFound,
    MnemostoreError,
    NewMessage,
    Page,
    QuotaExceeded,
    Quotas,
    Role,
    TenantAlreadyExists,
    TenantNotFound,
    TenantStatus,
    TenantUsage,
    UserNotFound,
)

# -- helpers ----------------------------------------------------------------------------------------------------


def _unique(prefix: str = "tenant") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def _assert_utc(*values: datetime | None) -> None:
    for value in values:
        assert isinstance(value, datetime), value
        assert value.tzinfo is not None, f"{value!r} is naive"
        assert value.utcoffset() == timedelta(0), f"{value!r} is not UTC"


def _usage(t: AsyncTenantStore, users: int, conversations: int, messages: int, tokens: int, size: int) -> TenantUsage:
    return TenantUsage(
        tenant_id=t.tenant_id,
        users=users,
        conversations=conversations,
        messages=messages,
        tokens=tokens,
        storage_bytes=size,
    )


async def _other_tenant(astore: AsyncMnemoStore) -> AsyncTenantStore:
    created = await astore.create_tenant(_unique())
    return astore.tenant(created.id)


async def _conversation(t: AsyncTenantStore, messages: int = 0) -> Any:
    """A new user's conversation with ``messages`` messages ("m1", "m2", ...), alternating user/assistant."""
    user = await t.create_user(display_name="Ada")
    conv = await t.create_conversation(user.id, title="chat")
    for n in range(1, messages + 1):
        await t.add_message(conv.id, role="user" if n % 2 else "assistant", content=f"m{n}")
    return conv


async def _all_history(t: AsyncTenantStore, conversation_id: uuid.UUID) -> list[Any]:
    page = await t.get_conversation_history(conversation_id, limit=1000)
    return page.messages


async def _outcome(call: Any, ident: Any) -> Any:
    """What a call does with an id: the NotFoundError class it raises, or what it returns."""
    try:
        result = await call(ident)
    except MnemostoreError as error:
        return type(error)
    return ("returned", result)


# -- tenants ----------------------------------------------------------------------------------------------------


async def test_create_tenant_has_defaults_and_can_be_found(astore):
    name = _unique()
    created = await astore.create_tenant(name)
    assert created.name == name
    assert created.plan == "free"
    assert created.status is TenantStatus.ACTIVE
    assert created.quotas == Quotas(max_users=None, max_messages=None, max_storage_bytes=None)
    assert created.config == {}
    assert created.created_at == created.updated_at
    assert await astore.get_tenant(created.id) == created
    assert await astore.get_tenant(str(created.id)) == created
    assert await astore.get_tenant_or_raise(created.id) == created
    assert await astore.get_tenant_by_name(name) == created
    assert await astore.get_tenant_usage(created.id) == TenantUsage(
        tenant_id=created.id, users=0, conversations=0, messages=0, tokens=0, storage_bytes=0
    )


async def test_create_tenant_with_plan_config_and_quotas(astore):
    quotas = Quotas(max_users=3, max_messages=100, max_storage_bytes=5000)
    created = await astore.create_tenant(_unique(), plan="pro", config={"region": "eu", "n": [1, 2]}, quotas=quotas)
    fetched = await astore.get_tenant(created.id)
    assert fetched is not None
    assert (fetched.plan, fetched.config, fetched.quotas) == ("pro", {"region": "eu", "n": [1, 2]}, quotas)


async def test_unknown_tenant_is_none_or_not_found(astore):
    missing = uuid.uuid4()
    assert await astore.get_tenant(missing) is None
    assert await astore.get_tenant_by_name(_unique()) is None
    with pytest.raises(TenantNotFound):
        await astore.get_tenant_or_raise(missing)
    with pytest.raises(TenantNotFound):
        await astore.update_tenant_config(missing, plan="pro")
    with pytest.raises(TenantNotFound):
        await astore.delete_tenant(missing)
    with pytest.raises(TenantNotFound):
        await astore.get_tenant_usage(missing)
    with pytest.raises(TenantNotFound):
        await astore.recount_tenant_usage(missing)


async def test_duplicate_tenant_name_is_refused(astore):
    name = _unique()
    first = await astore.create_tenant(name)
    with pytest.raises(TenantAlreadyExists) as raised:
        await astore.create_tenant(name, plan="pro")
    assert isinstance(raised.value, ConflictError)
    assert name in str(raised.value)
    assert await astore.get_tenant_by_name(name) == first


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "x" * 201])
async def test_bad_tenant_name_is_refused(astore, name):
    with pytest.raises(InvalidInput):
        await astore.create_tenant(name)
    assert await astore.get_tenant_by_name(name.replace("\x00", "")) is None


async def test_update_tenant_config(astore, atenant):
    before = await astore.get_tenant_or_raise(atenant.tenant_id)
    await astore.update_tenant_config(atenant.tenant_id, config={"a": 1, "b": 2})
    updated = await astore.update_tenant_config(atenant.tenant_id, config={"c": 3})
    assert updated.config == {"c": 3}, "config is replaced whole, not merged"
    assert updated.plan == before.plan and updated.quotas == before.quotas
    assert updated.updated_at > before.updated_at
    assert updated.created_at == before.created_at

    quotas = Quotas(max_users=5, max_messages=None, max_storage_bytes=10)
    updated = await astore.update_tenant_config(
        atenant.tenant_id, plan="team", quotas=quotas, status=TenantStatus.SUSPENDED
    )
    assert (updated.plan, updated.quotas, updated.status, updated.config) == (
        "team",
        quotas,
        TenantStatus.SUSPENDED,
        {"c": 3},
    )
    assert await astore.get_tenant(atenant.tenant_id) == updated

    updated = await astore.update_tenant_config(atenant.tenant_id, status="active")
    assert updated.status is TenantStatus.ACTIVE

    with pytest.raises(InvalidInput) as raised:
        await astore.update_tenant_config(atenant.tenant_id, status="deleted", plan="evil")
    assert "active, suspended" in str(raised.value)
    with pytest.raises(InvalidMetadata):
        await astore.update_tenant_config(atenant.tenant_id, config={"bad": {1, 2}})
    with pytest.raises(InvalidInput):
        await astore.update_tenant_config(atenant.tenant_id, plan="")
    assert await astore.get_tenant(atenant.tenant_id) == updated


@pytest.mark.parametrize(
    "quotas",
    [Quotas(max_users=-1), Quotas(max_messages="many"), Quotas(max_storage_bytes=1.5), Quotas(max_users=True)],  # type: ignore[arg-type]
    ids=["negative", "str", "float", "bool"],
)
async def test_bad_quotas_are_refused(astore, atenant, quotas):
    name = _unique()
    with pytest.raises(InvalidInput):
        await astore.create_tenant(name, quotas=quotas)
    assert await astore.get_tenant_by_name(name) is None
    before = await astore.get_tenant_or_raise(atenant.tenant_id)
    with pytest.raises(InvalidInput):
        await astore.update_tenant_config(atenant.tenant_id, quotas=quotas)
    assert await astore.get_tenant(atenant.tenant_id) == before


async def test_list_tenants_pages_through_every_tenant_once(astore):
    created = {(await astore.create_tenant(_unique())).id for _ in range(3)}
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await astore.list_tenants(limit=7, cursor=cursor)
        assert len(page.items) <= 7
        seen.extend(t.id for t in page.items)
        if page.next_cursor is None:
            break
        assert len(page.items) == 7
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)), "a tenant appeared on two pages"
    assert seen == sorted(seen)
    assert created <= set(seen)
    with pytest.raises(InvalidInput):
        await astore.list_tenants(limit=0)


async def test_usage_counts_every_write_and_delete(astore, atenant):
    t = atenant
    ada = await t.create_user(display_name="Ada")
    bob = await t.create_user(display_name="Bob")
    c1 = await t.create_conversation(ada.id)
    c2 = await t.create_conversation(bob.id)
    await t.add_message(c1.id, role="user", content="héllo", prompt_tokens=3, completion_tokens=4)
    kept = await t.add_message(c1.id, role="assistant", content="日本", completion_tokens=5)
    await t.add_message(c2.id, role="user", content="abc", prompt_tokens=1, completion_tokens=1)
    chunk_text = "ünïcödé knowledge"
    chunk = await t.upsert_knowledge("docs", "a", chunk_text)
    await t.store_memory("memories are not counted", user_id=ada.id)
    size = _utf8("héllo") + _utf8("日本") + _utf8("abc") + _utf8(chunk_text)
    assert size == 6 + 6 + 3 + _utf8(chunk_text)
    expected = _usage(t, users=2, conversations=2, messages=3, tokens=14, size=size)
    assert await astore.get_tenant_usage(t.tenant_id) == expected
    assert await astore.recount_tenant_usage(t.tenant_id) == expected

    await t.delete_message(kept.id)
    expected = _usage(t, users=2, conversations=2, messages=2, tokens=9, size=size - 6)
    assert await astore.get_tenant_usage(t.tenant_id) == expected

    await t.delete_conversation(c2.id)
    expected = _usage(t, users=2, conversations=1, messages=1, tokens=7, size=size - 9)
    assert await astore.get_tenant_usage(t.tenant_id) == expected

    await t.delete_knowledge_chunk(chunk.id)
    await t.delete_user(bob.id)
    expected = _usage(t, users=1, conversations=1, messages=1, tokens=7, size=6)
    assert await astore.get_tenant_usage(t.tenant_id) == expected
    assert await astore.recount_tenant_usage(t.tenant_id) == expected
    assert await astore.get_tenant_usage(t.tenant_id) == expected


async def test_delete_tenant_cascades_to_everything_it_owns(astore, atenant):
    doomed = await _other_tenant(astore)
    user = await doomed.create_user(email="ada@example.com")
    conv = await doomed.create_conversation(user.id)
    message = await doomed.add_message(conv.id, role="user", content="hi")
    _key, secret = await doomed.create_api_key("ci")
    survivor = await atenant.create_user(email="ada@example.com")

    await astore.delete_tenant(doomed.tenant_id)

    assert await astore.get_tenant(doomed.tenant_id) is None
    assert await doomed.get_user(user.id) is None
    assert await doomed.get_user_by_email("ada@example.com") is None
    assert await doomed.get_conversation(conv.id) is None
    assert await doomed.get_message(message.id) is None
    assert (await doomed.list_users()).items == []
    assert await astore.authenticate(secret) is None
    with pytest.raises(TenantNotFound):
        await astore.get_tenant_usage(doomed.tenant_id)
    with pytest.raises(TenantNotFound):
        await astore.delete_tenant(doomed.tenant_id)
    assert await atenant.get_user(survivor.id) == survivor


# -- quotas -----------------------------------------------------------------------------------------------------


async def test_max_users_quota(astore, atenant):
    t = atenant
    await astore.update_tenant_config(t.tenant_id, quotas=Quotas(max_users=1))
    first = await t.create_user(email="a@example.com")
    with pytest.raises(QuotaExceeded) as raised:
        await t.create_user(email="b@example.com")
    assert (raised.value.quota, raised.value.limit, raised.value.tenant_id) == ("max_users", 1, t.tenant_id)
    with pytest.raises(QuotaExceeded):
        await t.get_or_create_user_by_identity("discord", "42")
    assert [u.id for u in (await t.list_users()).items] == [first.id]
    assert await t.get_user_by_email("b@example.com") is None
    assert await t.get_user_by_identity("discord", "42") is None
    assert (await astore.get_tenant_usage(t.tenant_id)).users == 1

    await astore.update_tenant_config(t.tenant_id, quotas=Quotas(max_users=2))
    second = await t.create_user(email="b@example.com")
    assert await t.get_user_by_email("b@example.com") == second
    assert (await astore.get_tenant_usage(t.tenant_id)).users == 2


async def test_max_messages_quota_writes_nothing_when_exceeded(astore, atenant):
    t = atenant
    conv = await _conversation(t)
    await astore.update_tenant_config(t.tenant_id, quotas=Quotas(max_messages=3))
    await t.add_messages(conv.id, [NewMessage(role="user", content="one"), NewMessage(role="user", content="two")])
    before = await t.get_conversation_or_raise(conv.id)
    history = await _all_history(t, conv.id)
    usage = await astore.get_tenant_usage(t.tenant_id)

    with pytest.raises(QuotaExceeded) as raised:
        await t.add_messages(
            conv.id, [NewMessage(role="user", content="three"), NewMessage(role="user", content="four")]
        )
    assert (raised.value.quota, raised.value.limit) == ("max_messages", 3)
    await t.add_message(conv.id, role="user", content="three")
    with pytest.raises(QuotaExceeded):
        await t.add_message(conv.id, role="user", content="four", idempotency_key="k4")

    after = await t.get_conversation_or_raise(conv.id)
    assert (after.message_count, after.last_seq, after.content_bytes) == (3, 3, before.content_bytes + 5)
    assert [m.content for m in await _all_history(t, conv.id)] == [m.content for m in history] + ["three"]
    assert (await astore.get_tenant_usage(t.tenant_id)).messages == usage.messages + 1

    await astore.update_tenant_config(t.tenant_id, quotas=Quotas(max_messages=10))
    added = await t.add_message(conv.id, role="user", content="four", idempotency_key="k4")
    assert added.seq == 4, "a refused write must not burn a sequence number"
    assert (await astore.get_tenant_usage(t.tenant_id)).messages == 4


async def test_max_storage_bytes_quota(astore, atenant):
    t = atenant
    conv = await _conversation(t)
    await astore.update_tenant_config(t.tenant_id, quotas=Quotas(max_storage_bytes=10))
    await t.add_message(conv.id, role="user", content="ééé")  # 6 bytes
    with pytest.raises(QuotaExceeded) as raised:
        await t.add_message(conv.id, role="user", content="ééé")  # 6 more: 12 > 10
    assert (raised.value.quota, raised.value.limit) == ("max_storage_bytes", 10)
    with pytest.raises(QuotaExceeded):
        await t.upsert_knowledge("docs", "a", "12345")
    assert (await t.list_knowledge("docs")).items == []
    assert [m.content for m in await _all_history(t, conv.id)] == ["ééé"]
    assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == 6

    await t.add_message(conv.id, role="user", content="1234")  # exactly at the limit is allowed
    assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == 10
    await astore.update_tenant_config(t.tenant_id, quotas=Quotas(max_storage_bytes=100))
    await t.upsert_knowledge("docs", "a", "12345")
    assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == 15


# -- API keys ---------------------------------------------------------------------------------------------------


async def test_api_key_secret_is_returned_once_and_authenticates(astore, atenant):
    key, secret = await atenant.create_api_key("ci", read_only=True)
    assert (key.name, key.read_only, key.tenant_id, key.revoked_at) == ("ci", True, atenant.tenant_id, None)
    assert secret.startswith("mns_")
    assert key.prefix in secret
    listed = (await atenant.list_api_keys()).items
    assert listed == [key]
    assert all(secret not in repr(k) for k in listed)
    found = await astore.authenticate(secret)
    assert found is not None
    assert (found.id, found.tenant_id, found.read_only) == (key.id, atenant.tenant_id, True)
    other_key, other_secret = await atenant.create_api_key("bot")
    assert other_secret != secret
    assert (await astore.authenticate(other_secret)).id == other_key.id


async def test_wrong_malformed_and_revoked_keys_do_not_authenticate(astore, atenant):
    key, secret = await atenant.create_api_key("ci")
    prefix, tenant_hex, body = secret.split("_", 2)
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    for candidate in [
        f"{prefix}_{tenant_hex}_{flipped}",
        f"{prefix}_{tenant_hex}_",
        f"xyz_{tenant_hex}_{body}",
        f"{prefix}_not-hex_{body}",
        f"{prefix}_{uuid.uuid4().hex}_{body}",
        body,
        "",
        "mns",
        "mns__",
    ]:
        assert await astore.authenticate(candidate) is None, candidate
    assert await astore.authenticate(secret) is not None

    await atenant.revoke_api_key(key.id)
    assert await astore.authenticate(secret) is None
    (revoked,) = (await atenant.list_api_keys()).items
    assert revoked.id == key.id
    _assert_utc(revoked.revoked_at)
    with pytest.raises(ApiKeyNotFound):
        await atenant.revoke_api_key(uuid.uuid4())


async def test_api_key_of_one_tenant_never_authenticates_as_another(astore, atenant):
    other = await _other_tenant(astore)
    key, secret = await atenant.create_api_key("ci")
    other_key, other_secret = await other.create_api_key("ci")
    _, _, body = secret.split("_", 2)
    assert await astore.authenticate(f"mns_{other.tenant_id.hex}_{body}") is None
    assert (await astore.authenticate(secret)).tenant_id == atenant.tenant_id
    assert (await astore.authenticate(other_secret)).tenant_id == other.tenant_id
    with pytest.raises(ApiKeyNotFound):
        await other.revoke_api_key(key.id)
    assert await astore.authenticate(secret) is not None
    assert (await other.list_api_keys()).items == [other_key]


# -- users ------------------------------------------------------------------------------------------------------


async def test_create_and_get_user(atenant):
    t = atenant
    user = await t.create_user(
        display_name="Ada",
        email="ada@example.com",
        external_id="ext-1",
        preferred_model="gpt-x",
        preferences={"lang": "fr"},
        metadata={"vip": True, "tags": ["a"]},
    )
    assert user.tenant_id == t.tenant_id
    assert (user.display_name, user.email, user.external_id, user.preferred_model) == (
        "Ada",
        "ada@example.com",
        "ext-1",
        "gpt-x",
    )
    assert (user.preferences, user.metadata) == ({"lang": "fr"}, {"vip": True, "tags": ["a"]})
    assert await t.get_user(user.id) == user
    assert await t.get_user(str(user.id)) == user
    assert await t.get_user_or_raise(user.id) == user
    assert await t.get_user_by_email("ada@example.com") == user
    assert await t.get_user_by_external_id("ext-1") == user
    assert await t.get_user(uuid.uuid4()) is None
    assert await t.get_user_by_email("nobody@example.com") is None
    assert await t.get_user_by_external_id("ext-2") is None
    with pytest.raises(UserNotFound):
        await t.get_user_or_raise(uuid.uuid4())
    minimal = await t.create_user()
    assert (minimal.email, minimal.preferences, minimal.metadata) == (None, {}, {})


async def test_duplicate_email_or_external_id_is_a_conflict(astore, atenant):
    t = atenant
    ada = await t.create_user(email="ada@example.com", external_id="ext-1")
    with pytest.raises(ConflictError):
        await t.create_user(email="ada@example.com")
    with pytest.raises(ConflictError):
        await t.create_user(external_id="ext-1")
    assert [u.id for u in (await t.list_users()).items] == [ada.id]
    assert (await astore.get_tenant_usage(t.tenant_id)).users == 1
    bob = await t.create_user(email="bob@example.com")
    with pytest.raises(ConflictError):
        await t.update_user(bob.id, email="ada@example.com")
    assert await t.get_user(bob.id) == bob
    other = await _other_tenant(astore)
    assert (await other.create_user(email="ada@example.com")).email == "ada@example.com"


async def test_get_or_create_helpers_are_idempotent(astore, atenant):
    t = atenant
    first = await t.get_or_create_user_by_identity("discord", "1234", username="ada", email="ada@example.com")
    again = await t.get_or_create_user_by_identity("discord", "1234", username="someone else")
    assert again == first
    assert first.display_name == "ada", "display_name defaults to the username"
    assert await t.get_user_by_identity("discord", "1234") == first
    other = await t.get_or_create_user_by_identity("telegram", "1234")
    assert other.id != first.id
    (identity,) = await t.list_identities(first.id)
    assert (identity.channel, identity.channel_user_id, identity.username, identity.user_id) == (
        "discord",
        "1234",
        "ada",
        first.id,
    )
    by_email = await t.get_or_create_user_by_email("bob@example.com", display_name="Bob")
    assert await t.get_or_create_user_by_email("bob@example.com") == by_email
    by_ext = await t.get_or_create_user_by_external_id("ext-9")
    assert await t.get_or_create_user_by_external_id("ext-9") == by_ext
    assert (await astore.get_tenant_usage(t.tenant_id)).users == 4
    with pytest.raises(InvalidInput):
        await t.get_or_create_user_by_identity("", "1")


async def test_link_identity(atenant):
    t = atenant
    ada = await t.get_or_create_user_by_identity("discord", "1")
    bob = await t.create_user(display_name="Bob")
    linked = await t.link_identity(ada.id, "telegram", "77", username="ada_t")
    assert (linked.user_id, linked.channel, linked.channel_user_id, linked.username) == (
        ada.id,
        "telegram",
        "77",
        "ada_t",
    )
    assert await t.get_user_by_identity("telegram", "77") == ada
    with pytest.raises(DuplicateIdentity):
        await t.link_identity(bob.id, "telegram", "77")
    with pytest.raises(DuplicateIdentity):
        await t.link_identity(ada.id, "discord", "1")
    with pytest.raises(UserNotFound):
        await t.link_identity(uuid.uuid4(), "slack", "U1")
    assert [(i.channel, i.channel_user_id) for i in await t.list_identities(ada.id)] == [
        ("discord", "1"),
        ("telegram", "77"),
    ]
    assert await t.list_identities(bob.id) == []
    assert await t.get_user_by_identity("slack", "U1") is None


async def test_update_user_changes_only_the_fields_passed(atenant):
    t = atenant
    user = await t.create_user(display_name="Ada", email="ada@example.com", metadata={"a": 1}, preferences={"p": 1})
    renamed = await t.update_user(user.id, display_name="Ada L.")
    assert (renamed.display_name, renamed.email, renamed.metadata, renamed.preferences) == (
        "Ada L.",
        "ada@example.com",
        {"a": 1},
        {"p": 1},
    )
    assert renamed.updated_at > user.updated_at
    assert renamed.created_at == user.created_at
    cleared = await t.update_user(user.id, email=None, metadata={"b": 2})
    assert (cleared.display_name, cleared.email, cleared.metadata, cleared.preferences) == (
        "Ada L.",
        None,
        {"b": 2},
        {"p": 1},
    )
    assert await t.get_user(user.id) == cleared
    assert await t.get_user_by_email("ada@example.com") is None
    with pytest.raises(UserNotFound):
        await t.update_user(uuid.uuid4(), display_name="x")
    with pytest.raises(InvalidMetadata):
        await t.update_user(user.id, metadata=["not", "an", "object"])
    assert await t.get_user(user.id) == cleared


async def test_list_users_walks_every_page_once(atenant):
    t = atenant
    created = [(await t.create_user(display_name=f"u{n}")).id for n in range(7)]
    seen: list[uuid.UUID] = []
    sizes = []
    cursor = None
    while True:
        page = await t.list_users(limit=3, cursor=cursor)
        seen.extend(u.id for u in page.items)
        sizes.append(len(page.items))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == sorted(created)
    exact = await t.list_users(limit=7)
    assert len(exact.items) == 7 and exact.next_cursor is None


async def test_delete_user_cascades_and_releases_usage(astore, atenant):
    t = atenant
    ada = await t.get_or_create_user_by_identity("discord", "1")
    bob = await t.create_user(display_name="Bob")
    conv = await t.create_conversation(ada.id)
    message = await t.add_message(conv.id, role="user", content="héllo", prompt_tokens=2, completion_tokens=3)
    memory = await t.store_memory("likes tea", user_id=ada.id)
    shared = await t.store_memory("not about anyone")
    bob_conv = await t.create_conversation(bob.id)
    await t.add_message(bob_conv.id, role="user", content="hey", completion_tokens=1)

    await t.delete_user(ada.id)

    assert await t.get_user(ada.id) is None
    assert await t.get_user_by_identity("discord", "1") is None
    assert await t.list_identities(ada.id) == []
    assert await t.get_conversation(conv.id) is None
    assert await t.get_message(message.id) is None
    assert await t.get_memory(memory.id) is None
    assert await t.get_memory(shared.id) == shared
    assert (await t.list_conversations(ada.id)).items == []
    assert await astore.get_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 1, 1, 3)
    assert await astore.recount_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 1, 1, 3)
    with pytest.raises(UserNotFound):
        await t.delete_user(ada.id)
    # The identity is free again.
    assert (await t.get_or_create_user_by_identity("discord", "1")).id != ada.id


# -- channel config ---------------------------------------------------------------------------------------------


async def test_channel_config_is_set_replaced_and_read(astore, atenant):
    t = atenant
    assert await t.get_channel_config("discord") is None
    first = await t.set_channel_config(
        "discord", default_model="m1", settings={"prefix": "!"}, rate_limits={"per_minute": 10}
    )
    assert (first.tenant_id, first.channel, first.default_model, first.settings, first.rate_limits) == (
        t.tenant_id,
        "discord",
        "m1",
        {"prefix": "!"},
        {"per_minute": 10},
    )
    assert await t.get_channel_config("discord") == first
    replaced = await t.set_channel_config("discord", settings={"prefix": "?"})
    assert (replaced.default_model, replaced.settings, replaced.rate_limits) == (None, {"prefix": "?"}, {})
    assert replaced.updated_at >= first.updated_at
    assert await t.get_channel_config("discord") == replaced
    await t.set_channel_config("telegram", default_model="m2")
    assert (await t.get_channel_config("discord")) == replaced
    assert (await t.get_channel_config("telegram")).default_model == "m2"
    other = await _other_tenant(astore)
    assert await other.get_channel_config("discord") is None
    with pytest.raises(InvalidInput):
        await t.set_channel_config("")
    with pytest.raises(InvalidMetadata):
        await t.set_channel_config("discord", settings={"x": float("nan")})
    assert await t.get_channel_config("discord") == replaced


# -- conversations ----------------------------------------------------------------------------------------------


async def test_create_and_get_conversation(astore, atenant):
    t = atenant
    user = await t.create_user()
    conv = await t.create_conversation(
        user.id, title="Hello", channel="discord", model_override="m", metadata={"topic": "x"}
    )
    assert (conv.user_id, conv.title, conv.channel, conv.model_override, conv.metadata, conv.status) == (
        user.id,
        "Hello",
        "discord",
        "m",
        {"topic": "x"},
        ConversationStatus.ACTIVE,
    )
    assert (conv.message_count, conv.total_tokens, conv.content_bytes, conv.last_seq) == (0, 0, 0, 0)
    assert conv.started_at == conv.last_activity_at
    assert await t.get_conversation(conv.id) == conv
    assert await t.get_conversation_or_raise(str(conv.id)) == conv
    assert await t.get_conversation(uuid.uuid4()) is None
    with pytest.raises(ConversationNotFound):
        await t.get_conversation_or_raise(uuid.uuid4())
    with pytest.raises(UserNotFound):
        await t.create_conversation(uuid.uuid4())
    assert (await astore.get_tenant_usage(t.tenant_id)).conversations == 1


async def test_list_conversations_newest_activity_first_with_filter_and_paging(atenant):
    t = atenant
    user = await t.create_user()
    someone_else = await t.create_user()
    await t.create_conversation(someone_else.id)
    convs = [await t.create_conversation(user.id, title=f"c{n}") for n in range(5)]
    await t.add_message(convs[1].id, role="user", content="bump")  # c1 becomes the most recent
    await t.archive_conversation(convs[3].id)  # no activity change

    expected = [convs[1].id, convs[4].id, convs[3].id, convs[2].id, convs[0].id]
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await t.list_conversations(user.id, limit=2, cursor=cursor)
        seen.extend(c.id for c in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    full = (await t.list_conversations(user.id, limit=10)).items
    assert [c.id for c in full] == expected
    keys = [(c.last_activity_at, c.id) for c in full]
    assert keys == sorted(keys, reverse=True)

    archived = await t.list_conversations(user.id, status="archived")
    assert [c.id for c in archived.items] == [convs[3].id]
    active = await t.list_conversations(user.id, status=ConversationStatus.ACTIVE, limit=1)
    assert [c.id for c in active.items] == [convs[1].id]
    rest = await t.list_conversations(user.id, status="active", limit=10, cursor=active.next_cursor)
    assert [c.id for c in rest.items] == [convs[4].id, convs[2].id, convs[0].id]
    with pytest.raises(InvalidInput):
        await t.list_conversations(user.id, status="deleted")
    with pytest.raises(InvalidCursor):
        await t.list_conversations(user.id, cursor="garbage")
    assert (await t.list_conversations(uuid.uuid4())) == Page(items=[], next_cursor=None)


async def test_update_and_archive_conversation(atenant):
    t = atenant
    user = await t.create_user()
    conv = await t.create_conversation(user.id, title="old", model_override="m", metadata={"a": 1})
    updated = await t.update_conversation(conv.id, title="new")
    assert (updated.title, updated.model_override, updated.metadata) == ("new", "m", {"a": 1})
    updated = await t.update_conversation(conv.id, title=None, model_override=None, metadata={"b": 2})
    assert (updated.title, updated.model_override, updated.metadata) == (None, None, {"b": 2})
    assert await t.update_conversation(conv.id) == updated
    archived = await t.archive_conversation(conv.id)
    assert archived.status is ConversationStatus.ARCHIVED
    assert (await t.get_conversation(conv.id)).status is ConversationStatus.ARCHIVED
    reopened = await t.update_conversation(conv.id, status="active")
    assert reopened.status is ConversationStatus.ACTIVE
    with pytest.raises(InvalidInput):
        await t.update_conversation(conv.id, status="closed", title="x")
    assert await t.get_conversation(conv.id) == reopened
    with pytest.raises(ConversationNotFound):
        await t.update_conversation(uuid.uuid4(), title="x")
    with pytest.raises(ConversationNotFound):
        await t.archive_conversation(uuid.uuid4())


async def test_delete_conversation_cascades(astore, atenant):
    t = atenant
    conv = await _conversation(t, messages=3)
    keep = await _conversation(t, messages=1)
    message = (await _all_history(t, conv.id))[0]
    tool = await t.record_tool_execution("search", conversation_id=conv.id)
    loose_tool = await t.record_tool_execution("search")
    checkpoint = await t.create_checkpoint(conv.id, iteration=1, state={"s": 1})
    await t.record_interaction_event("approval", conversation_id=conv.id)
    await t.record_metric("latency", 1.0, conversation_id=conv.id)
    assert [x.id for x in (await t.list_tool_executions(conversation_id=conv.id)).items] == [tool.id]
    assert len((await t.list_interaction_events(conversation_id=conv.id)).items) == 1
    assert len((await t.query_metrics(conversation_id=conv.id)).items) == 1

    await t.delete_conversation(conv.id)

    assert await t.get_conversation(conv.id) is None
    assert await t.get_message(message.id) is None
    assert (await t.list_tool_executions(conversation_id=conv.id)).items == []
    assert [x.id for x in (await t.list_tool_executions()).items] == [loose_tool.id]
    assert (await t.list_checkpoints(conv.id)).items == []
    with pytest.raises(CheckpointNotFound):
        await t.get_checkpoint_by_id(checkpoint.id)
    assert (await t.list_interaction_events(conversation_id=conv.id)).items == []
    assert (await t.query_metrics(conversation_id=conv.id)).items == []
    assert await t.count_messages(keep.id) == 1
    usage = await astore.get_tenant_usage(t.tenant_id)
    assert (usage.conversations, usage.messages, usage.storage_bytes) == (1, 1, 2)
    with pytest.raises(ConversationNotFound):
        await t.delete_conversation(conv.id)


async def test_conversation_stats(atenant):
    t = atenant
    conv = await _conversation(t)
    empty = await t.get_conversation_stats(conv.id)
    assert (empty.message_count, empty.messages_by_role, empty.total_tokens) == (0, {}, 0)
    assert (empty.first_message_at, empty.last_message_at) == (None, None)
    first = await t.add_message(conv.id, role="system", content="be nice")
    await t.add_message(conv.id, role="user", content="hi", prompt_tokens=5)
    await t.add_message(conv.id, role="assistant", content="hello", prompt_tokens=5, completion_tokens=7)
    await t.add_message(conv.id, role="user", content="thanks", prompt_tokens=2)
    last = await t.add_message(conv.id, role="tool", content="{}", completion_tokens=1)
    await t.record_tool_execution("search", conversation_id=conv.id)
    await t.record_tool_execution("calc", conversation_id=conv.id)
    await t.record_tool_execution("unrelated")
    await t.create_checkpoint(conv.id, iteration=1, state={})
    stats = await t.get_conversation_stats(conv.id)
    assert stats.conversation_id == conv.id
    assert stats.message_count == 5
    assert stats.messages_by_role == {"system": 1, "user": 2, "assistant": 1, "tool": 1}
    assert (stats.prompt_tokens, stats.completion_tokens, stats.total_tokens) == (12, 8, 20)
    assert (stats.tool_executions, stats.checkpoints) == (2, 1)
    assert (stats.first_message_at, stats.last_message_at) == (first.created_at, last.created_at)
    _assert_utc(stats.first_message_at, stats.last_message_at)
    with pytest.raises(ConversationNotFound):
        await t.get_conversation_stats(uuid.uuid4())


# -- messages ---------------------------------------------------------------------------------------------------


async def test_add_message_updates_counters_and_activity(astore, atenant):
    t = atenant
    conv = await _conversation(t)
    seqs = []
    for n in range(1, 6):
        message = await t.add_message(
            conv.id,
            role=Role.USER if n % 2 else "assistant",
            content=f"é{n}",
            model="m" if n % 2 == 0 else None,
            prompt_tokens=n,
            completion_tokens=10 * n,
            metadata={"n": n},
        )
        seqs.append(message.seq)
        current = await t.get_conversation_or_raise(conv.id)
        assert current.last_activity_at == message.created_at
        assert current.last_activity_at > conv.last_activity_at
        conv = current
    assert seqs == [1, 2, 3, 4, 5]
    assert (conv.message_count, conv.last_seq, conv.total_tokens, conv.content_bytes) == (5, 5, 165, 15)
    stored = await t.get_message(message.id)
    assert stored == message
    assert (stored.role, stored.content, stored.model, stored.metadata, stored.total_tokens) == (
        Role.USER,
        "é5",
        None,
        {"n": 5},
        55,
    )
    assert await t.count_messages(conv.id) == 5
    assert await astore.get_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 5, 165, 15)
    assert await t.get_message(uuid.uuid4()) is None
    with pytest.raises(ConversationNotFound):
        await t.add_message(uuid.uuid4(), role="user", content="x")
    with pytest.raises(ConversationNotFound):
        await t.count_messages(uuid.uuid4())


async def test_add_messages_appends_in_order_in_one_call(atenant):
    t = atenant
    conv = await _conversation(t, messages=1)
    added = await t.add_messages(
        conv.id,
        [
            NewMessage(role="user", content="a", prompt_tokens=1),
            {"role": "assistant", "content": "b", "completion_tokens": 2, "metadata": {"k": "v"}},
            NewMessage(role="tool", content="c"),
        ],
    )
    assert [(m.seq, m.role, m.content) for m in added] == [
        (2, Role.USER, "a"),
        (3, Role.ASSISTANT, "b"),
        (4, Role.TOOL, "c"),
    ]
    assert len({m.created_at for m in added}) == 1
    assert [m.content for m in await _all_history(t, conv.id)] == ["m1", "a", "b", "c"]
    assert await t.add_messages(conv.id, []) == []
    assert (await t.get_conversation_or_raise(conv.id)).last_seq == 4


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (NewMessage(role="robot", content="x"), InvalidInput),
        (NewMessage(role="user", content="a\x00b"), InvalidText),
        (NewMessage(role="user", content="x", metadata={"k": "\x00"}), InvalidMetadata),
        (NewMessage(role="user", content="x", prompt_tokens=-1), InvalidInput),
        ({"role": "user", "content": "x", "colour": "red"}, InvalidInput),
        ({"role": "user"}, InvalidInput),
    ],
    ids=["role", "nul-content", "nul-metadata", "negative-tokens", "unknown-field", "no-content"],
)
async def test_add_messages_is_all_or_nothing(astore, atenant, bad, error):
    t = atenant
    conv = await _conversation(t, messages=2)
    before = await t.get_conversation_or_raise(conv.id)
    usage = await astore.get_tenant_usage(t.tenant_id)
    with pytest.raises(error):
        await t.add_messages(
            conv.id, [NewMessage(role="user", content="ok 1"), NewMessage(role="user", content="ok 2"), bad]
        )
    assert await t.get_conversation_or_raise(conv.id) == before
    assert [m.content for m in await _all_history(t, conv.id)] == ["m1", "m2"]
    assert await astore.get_tenant_usage(t.tenant_id) == usage
    assert (await t.add_message(conv.id, role="user", content="next")).seq == 3


async def test_idempotency_key_replays_return_the_original(astore, atenant):
    t = atenant
    conv = await _conversation(t)
    original = await t.add_message(conv.id, role="user", content="héllo", prompt_tokens=3, idempotency_key="k1")
    replay = await t.append_messages(
        conv.id, [NewMessage(role="user", content="héllo", prompt_tokens=3, idempotency_key="k1")]
    )
    assert replay.messages == [original] and replay.replayed == [True] and replay.all_replayed
    assert (original.seq, original.content, original.idempotency_key) == (1, "héllo", "k1")
    current = await t.get_conversation_or_raise(conv.id)
    assert (current.message_count, current.last_seq, current.total_tokens, current.content_bytes) == (1, 1, 3, 6)
    assert await astore.get_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 1, 3, 6)

    mixed = await t.append_messages(
        conv.id,
        [
            NewMessage(role="user", content="héllo", prompt_tokens=3, idempotency_key="k1"),
            NewMessage(role="assistant", content="new", completion_tokens=2, idempotency_key="k2"),
            NewMessage(role="user", content="plain"),
        ],
    )
    assert mixed.messages[0] == original and mixed.replayed == [True, False, False] and not mixed.all_replayed
    assert [(m.seq, m.content) for m in mixed.messages[1:]] == [(2, "new"), (3, "plain")]
    assert [m.seq for m in await _all_history(t, conv.id)] == [1, 2, 3]
    current = await t.get_conversation_or_raise(conv.id)
    assert (current.message_count, current.last_seq, current.total_tokens, current.content_bytes) == (3, 3, 5, 14)
    assert await astore.get_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 3, 5, 14)
    assert await astore.recount_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 3, 5, 14)
    assert (await t.add_message(conv.id, role="user", content="four")).seq == 4

    # The same key in another conversation is another message.
    other = await t.create_conversation(conv.user_id)
    elsewhere = await t.add_message(other.id, role="user", content="héllo", idempotency_key="k1")
    assert elsewhere.id != original.id
    assert elsewhere.seq == 1


async def test_an_idempotency_key_reused_for_another_message_is_refused_and_nothing_is_written(astore, atenant):
    t = atenant
    conv = await _conversation(t)
    original = await t.add_message(
        conv.id, role="user", content="héllo", prompt_tokens=3, metadata={"n": [1, 2]}, idempotency_key="k1"
    )
    for changed, fields in [
        ({"content": "different"}, ["content"]),
        ({"prompt_tokens": 99, "role": "assistant"}, ["role", "prompt_tokens"]),
        ({"metadata": {"n": [2, 1]}}, ["metadata"]),
        ({"model": "gpt"}, ["model"]),
    ]:
        sent = {"role": "user", "content": "héllo", "prompt_tokens": 3, "metadata": {"n": [1, 2]}, **changed}
        with pytest.raises(IdempotencyConflict) as refused:
            await t.add_message(conv.id, idempotency_key="k1", **sent)
        assert (refused.value.key, refused.value.seq, refused.value.fields) == ("k1", 1, fields)
        assert "use a new key for a new message" in str(refused.value)
    # One reused key in a batch refuses the whole batch: the fresh message is not written either.
    with pytest.raises(IdempotencyConflict):
        await t.add_messages(
            conv.id,
            [
                NewMessage(role="user", content="fresh", idempotency_key="k2"),
                NewMessage(role="user", content="other", idempotency_key="k1"),
            ],
        )
    assert [m.id for m in await _all_history(t, conv.id)] == [original.id]
    assert await astore.get_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 1, 3, 6)
    # A tuple and a list are the same JSON: the same message.
    again = await t.add_message(
        conv.id, role="user", content="héllo", prompt_tokens=3, metadata={"n": (1, 2)}, idempotency_key="k1"
    )
    assert again == original


async def test_duplicate_idempotency_keys_in_one_batch_are_refused(atenant):
    t = atenant
    conv = await _conversation(t)
    with pytest.raises(InvalidInput):
        await t.add_messages(
            conv.id,
            [
                NewMessage(role="user", content="a", idempotency_key="k"),
                NewMessage(role="user", content="b", idempotency_key="k"),
            ],
        )
    assert await _all_history(t, conv.id) == []
    assert (await t.get_conversation_or_raise(conv.id)).last_seq == 0


async def test_history_newest_page_and_cursor_walks(atenant):
    t = atenant
    conv = await _conversation(t, messages=10)
    everything = await _all_history(t, conv.id)
    assert [m.seq for m in everything] == list(range(1, 11))

    newest = await t.get_conversation_history(conv.id, limit=4)
    assert [m.seq for m in newest.messages] == [7, 8, 9, 10]
    assert newest.after is None and newest.before is not None

    # Walk back to the start, then forward to the end.
    backwards = [newest.messages]
    page = newest
    while page.before is not None:
        page = await t.get_conversation_history(conv.id, limit=4, before=page.before)
        backwards.insert(0, page.messages)
    assert [[m.seq for m in p] for p in backwards] == [[1, 2], [3, 4, 5, 6], [7, 8, 9, 10]]
    assert [m for p in backwards for m in p] == everything
    oldest = page
    assert oldest.after is not None

    forwards = list(oldest.messages)
    page = oldest
    while page.after is not None:
        page = await t.get_conversation_history(conv.id, limit=3, after=page.after)
        forwards.extend(page.messages)
    assert forwards == everything
    assert [m.seq for m in page.messages] == [9, 10]

    # A forward page's ``before`` leads back to what precedes it.
    middle = await t.get_conversation_history(conv.id, limit=3, after=oldest.after)
    assert [m.seq for m in middle.messages] == [3, 4, 5]
    back = await t.get_conversation_history(conv.id, limit=5, before=middle.before)
    assert [m.seq for m in back.messages] == [1, 2]
    assert back.before is None

    # New messages show up after the last forward cursor.
    end = await t.get_conversation_history(conv.id, limit=50)
    assert end.before is None and end.after is None
    tail = await t.get_conversation_history(conv.id, limit=2, before=newest.before)
    await t.add_message(conv.id, role="user", content="m11")
    after_tail = await t.get_conversation_history(conv.id, limit=50, after=tail.after)
    assert [m.seq for m in after_tail.messages] == [7, 8, 9, 10, 11]


async def test_history_of_empty_and_unknown_conversations(atenant):
    t = atenant
    conv = await _conversation(t)
    assert await t.get_conversation_history(conv.id) == HistoryPage(messages=[], before=None, after=None)
    with pytest.raises(ConversationNotFound):
        await t.get_conversation_history(uuid.uuid4())


async def test_history_refuses_bad_cursors_and_arguments(atenant):
    t = atenant
    conv = await _conversation(t, messages=3)
    page = await t.get_conversation_history(conv.id, limit=1)
    await t.create_conversation(conv.user_id)
    listing = await t.list_conversations(conv.user_id, limit=1)
    assert listing.next_cursor is not None

    def forged(*values: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")

    for cursor in [
        "garbage!",
        "",
        "bm90IGpzb24",
        listing.next_cursor,
        forged("h"),
        forged("h", "seven"),
        forged("h", None),
    ]:
        for direction in ("before", "after"):
            with pytest.raises(InvalidCursor):
                await t.get_conversation_history(conv.id, **{direction: cursor})
    with pytest.raises(InvalidInput):
        await t.get_conversation_history(conv.id, before=page.before, after=page.before)
    for limit in (0, -1, 1001):
        with pytest.raises(InvalidInput):
            await t.get_conversation_history(conv.id, limit=limit)


async def test_delete_message(astore, atenant):
    t = atenant
    conv = await _conversation(t)
    first = await t.add_message(conv.id, role="user", content="héllo", prompt_tokens=2, completion_tokens=3)
    second = await t.add_message(conv.id, role="assistant", content="yes", completion_tokens=1)
    await t.delete_message(first.id)
    assert await t.get_message(first.id) is None
    assert await _all_history(t, conv.id) == [second]
    assert await t.count_messages(conv.id) == 1
    current = await t.get_conversation_or_raise(conv.id)
    assert (current.message_count, current.total_tokens, current.content_bytes, current.last_seq) == (1, 1, 3, 2)
    assert await astore.get_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 1, 1, 3)
    assert (await t.add_message(conv.id, role="user", content="again")).seq == 3, "seqs are never reused"
    with pytest.raises(MessageNotFound):
        await t.delete_message(first.id)
    assert await astore.recount_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 2, 1, 8)


# -- bad input --------------------------------------------------------------------------------------------------


async def test_wrong_role_lists_the_allowed_roles(atenant):
    t = atenant
    conv = await _conversation(t)
    with pytest.raises(InvalidInput) as raised:
        await t.add_message(conv.id, role="robot", content="x")
    assert "user, assistant, system, tool" in str(raised.value)
    assert await _all_history(t, conv.id) == []


async def test_content_over_the_maximum_is_refused(astore, atenant):
    async with AsyncMnemoStore(astore.settings.database_url, max_content_bytes=100) as small:
        t = small.tenant(atenant.tenant_id)
        conv = await _conversation(t)
        fits = await t.add_message(conv.id, role="user", content="é" * 50)  # 100 bytes
        with pytest.raises(ContentTooLarge) as raised:
            await t.add_message(conv.id, role="user", content="é" * 51)  # 51 characters, 102 bytes
        assert "102" in str(raised.value)
        with pytest.raises(ContentTooLarge):
            await t.upsert_knowledge("docs", "a", "x" * 101)
        with pytest.raises(ContentTooLarge):
            await t.store_memory("x" * 101)
        assert await _all_history(t, conv.id) == [fits]
        assert (await t.list_knowledge("docs")).items == []
        assert (await t.retrieve_memories()).items == []
        assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == 100


async def test_nul_bytes_are_refused_and_nothing_is_written(astore, atenant):
    t = atenant
    conv = await _conversation(t)
    with pytest.raises(InvalidText):
        await t.add_message(conv.id, role="user", content="a\x00b")
    with pytest.raises(InvalidMetadata):
        await t.add_message(conv.id, role="user", content="ok", metadata={"note": "a\x00b"})
    with pytest.raises(InvalidMetadata):
        await t.add_message(conv.id, role="user", content="ok", metadata={"deep": [{"k\x00": 1}]})
    with pytest.raises(InvalidText):
        await t.create_user(display_name="Ada\x00")
    with pytest.raises(InvalidText):
        await t.upsert_knowledge("docs", "a", "x\x00")
    with pytest.raises(InvalidText):
        await t.store_memory("x\x00")
    assert await _all_history(t, conv.id) == []
    assert len((await t.list_users()).items) == 1
    assert await astore.get_tenant_usage(t.tenant_id) == _usage(t, 1, 1, 0, 0, 0)


@pytest.mark.parametrize(
    "metadata",
    [
        ["a", "list"],
        "text",
        42,
        {"s": {1, 2}},
        {"x": float("nan")},
        {"x": float("inf")},
        {1: "int key"},
        {"t": datetime.now(UTC)},
        {"o": object()},
    ],
    ids=["list", "str", "int", "set", "nan", "inf", "int-key", "datetime", "object"],
)
async def test_non_json_metadata_is_refused(atenant, metadata):
    t = atenant
    user = await t.create_user()
    conv = await t.create_conversation(user.id)
    with pytest.raises(InvalidMetadata):
        await t.add_message(conv.id, role="user", content="x", metadata=metadata)
    with pytest.raises(InvalidMetadata):
        await t.create_user(metadata=metadata)
    with pytest.raises(InvalidMetadata):
        await t.create_conversation(user.id, metadata=metadata)
    with pytest.raises(InvalidMetadata):
        await t.update_conversation(conv.id, metadata=metadata)
    with pytest.raises(InvalidMetadata):
        await t.store_memory("x", metadata=metadata)
    assert await _all_history(t, conv.id) == []
    assert [u.id for u in (await t.list_users()).items] == [user.id]
    assert [c.id for c in (await t.list_conversations(user.id)).items] == [conv.id]
    assert (await t.get_conversation_or_raise(conv.id)).metadata == {}


async def test_metadata_over_the_maximum_is_refused(astore, atenant):
    t = atenant
    conv = await _conversation(t)
    big = {"x": "a" * astore.settings.max_metadata_bytes}
    with pytest.raises(InvalidMetadata):
        await t.add_message(conv.id, role="user", content="x", metadata=big)
    assert await _all_history(t, conv.id) == []


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "1234", "g" * 32])
async def test_malformed_ids_are_invalid_input(astore, atenant, bad_id):
    t = atenant
    conv = await _conversation(t)
    if bad_id:  # any other text is a tenant name: a view whose first call finds no such tenant
        assert await astore.get_tenant(bad_id) is None
        with pytest.raises(TenantNotFound, match="no tenant has this name"):
            await astore.tenant(bad_id).list_users()
    else:
        with pytest.raises(InvalidInput):
            astore.tenant(bad_id)
        with pytest.raises(InvalidInput):
            await astore.get_tenant(bad_id)
    with pytest.raises(InvalidInput):
        await t.get_user(bad_id)
    with pytest.raises(InvalidInput):
        await t.get_conversation(bad_id)
    with pytest.raises(InvalidInput):
        await t.create_conversation(bad_id)
    with pytest.raises(InvalidInput):
        await t.add_message(bad_id, role="user", content="x")
    with pytest.raises(InvalidInput):
        await t.delete_message(bad_id)
    with pytest.raises(InvalidInput):
        await t.store_memory("x", user_id=bad_id)
    with pytest.raises(InvalidInput):
        await t.record_tool_execution("tool", conversation_id=bad_id)
    with pytest.raises(InvalidInput):
        await t.list_users(cursor=bad_id or "x")
    assert await _all_history(t, conv.id) == []


@pytest.mark.parametrize("tokens", [-1, 2**31, True, 1.5, "3"])
async def test_bad_token_counts_are_refused(atenant, tokens):
    t = atenant
    conv = await _conversation(t)
    with pytest.raises(InvalidInput):
        await t.add_message(conv.id, role="user", content="x", prompt_tokens=tokens)
    with pytest.raises(InvalidInput):
        await t.add_message(conv.id, role="user", content="x", completion_tokens=tokens)
    assert await _all_history(t, conv.id) == []


async def test_lookups_with_nul_bytes_are_invalid_text_on_both_backends(astore, atenant):
    t = atenant
    with pytest.raises(InvalidText):
        await astore.get_tenant_by_name("a\x00b")
    with pytest.raises(InvalidText):
        await t.get_user_by_email("a\x00@example.com")
    with pytest.raises(InvalidText):
        await t.get_user_by_external_id("ext\x00")
    with pytest.raises(InvalidText):
        await t.get_user_by_identity("discord", "1\x00")
    with pytest.raises(InvalidText):
        await t.get_channel_config("disc\x00rd")
    with pytest.raises(InvalidText):
        await t.list_knowledge("docs\x00")
    with pytest.raises(InvalidText):
        await t.list_knowledge("docs", cursor="a\x00")
    with pytest.raises(InvalidText):
        await t.list_tool_executions(tool="se\x00rch")


# -- tenant isolation -------------------------------------------------------------------------------------------


async def _snapshot(t: AsyncTenantStore, ids: dict[str, Any]) -> list[Any]:
    return [
        await t.get_user(ids["user"]),
        await t.list_identities(ids["user"]),
        await t.get_conversation(ids["conversation"]),
        await _all_history(t, ids["conversation"]),
        await t.get_memory(ids["memory"]),
        await t.get_knowledge_chunk(ids["chunk"]),
        (await t.list_checkpoints(ids["conversation"])).items,
        (await t.list_tool_executions()).items,
        (await t.list_interaction_events()).items,
        (await t.query_metrics()).items,
        (await t.list_api_keys()).items,
        await t.get_channel_config("discord"),
        await t.store.get_tenant_usage(t.tenant_id),
    ]


async def test_another_tenants_ids_behave_like_missing_ones(astore, atenant):
    a = atenant
    user = await a.get_or_create_user_by_identity("discord", "1", email="ada@example.com")
    await a.update_user(user.id, external_id="ext-1")
    conv = await a.create_conversation(user.id)
    message = await a.add_message(conv.id, role="user", content="secret", idempotency_key="k1")
    memory = await a.store_memory("secret memory", user_id=user.id)
    chunk = await a.upsert_knowledge("docs", "a", "secret doc")
    checkpoint = await a.create_checkpoint(conv.id, iteration=1, state={"s": 1})
    await a.record_tool_execution("search", conversation_id=conv.id)
    await a.record_interaction_event("approval", conversation_id=conv.id)
    await a.record_metric("latency", 1.0, conversation_id=conv.id)
    key, _secret = await a.create_api_key("ci")
    await a.set_channel_config("discord", default_model="m")
    exported = await a.export_conversation(conv.id)
    ids = {"user": user.id, "conversation": conv.id, "memory": memory.id, "chunk": chunk.id}
    before = await _snapshot(a, ids)

    b = await _other_tenant(astore)
    returned = "returned"
    empty_page: Page[Any] = Page(items=[], next_cursor=None)
    operations: list[tuple[str, Any, Any, Any]] = [
        # (name, call, A's id, expected outcome)
        ("get_user", lambda x: b.get_user(x), user.id, (returned, None)),
        ("get_user_or_raise", lambda x: b.get_user_or_raise(x), user.id, UserNotFound),
        ("update_user", lambda x: b.update_user(x, display_name="evil"), user.id, UserNotFound),
        ("delete_user", lambda x: b.delete_user(x), user.id, UserNotFound),
        ("list_identities", lambda x: b.list_identities(x), user.id, (returned, [])),
        ("link_identity", lambda x: b.link_identity(x, "evil", "1"), user.id, UserNotFound),
        ("create_conversation", lambda x: b.create_conversation(x), user.id, UserNotFound),
        ("list_conversations", lambda x: b.list_conversations(x), user.id, (returned, empty_page)),
        ("store_memory", lambda x: b.store_memory("evil", user_id=x), user.id, UserNotFound),
        ("retrieve_memories", lambda x: b.retrieve_memories(user_id=x), user.id, (returned, empty_page)),
        ("get_conversation", lambda x: b.get_conversation(x), conv.id, (returned, None)),
        ("get_conversation_or_raise", lambda x: b.get_conversation_or_raise(x), conv.id, ConversationNotFound),
        ("update_conversation", lambda x: b.update_conversation(x, title="evil"), conv.id, ConversationNotFound),
        ("update_conversation()", lambda x: b.update_conversation(x), conv.id, ConversationNotFound),
        ("archive_conversation", lambda x: b.archive_conversation(x), conv.id, ConversationNotFound),
        ("delete_conversation", lambda x: b.delete_conversation(x), conv.id, ConversationNotFound),
        ("get_conversation_stats", lambda x: b.get_conversation_stats(x), conv.id, ConversationNotFound),
        ("add_message", lambda x: b.add_message(x, role="user", content="evil"), conv.id, ConversationNotFound),
        (
            "add_message(replay)",
            lambda x: b.add_message(x, role="user", content="evil", idempotency_key="k1"),
            conv.id,
            ConversationNotFound,
        ),
        (
            "add_messages",
            lambda x: b.add_messages(x, [NewMessage(role="user", content="evil")]),
            conv.id,
            ConversationNotFound,
        ),
        ("get_conversation_history", lambda x: b.get_conversation_history(x), conv.id, ConversationNotFound),
        ("count_messages", lambda x: b.count_messages(x), conv.id, ConversationNotFound),
        ("export_conversation", lambda x: b.export_conversation(x), conv.id, ConversationNotFound),
        (
            "record_tool_execution",
            lambda x: b.record_tool_execution("t", conversation_id=x),
            conv.id,
            ConversationNotFound,
        ),
        ("list_tool_executions", lambda x: b.list_tool_executions(conversation_id=x), conv.id, (returned, empty_page)),
        ("create_checkpoint", lambda x: b.create_checkpoint(x, iteration=2, state={}), conv.id, ConversationNotFound),
        ("get_latest_checkpoint", lambda x: b.get_latest_checkpoint(x), conv.id, (returned, None)),
        ("get_checkpoint", lambda x: b.get_checkpoint(x, iteration=1), conv.id, CheckpointNotFound),
        ("list_checkpoints", lambda x: b.list_checkpoints(x), conv.id, (returned, empty_page)),
        ("prune_checkpoints", lambda x: b.prune_checkpoints(x, keep=0), conv.id, (returned, 0)),
        (
            "record_interaction_event",
            lambda x: b.record_interaction_event("e", conversation_id=x),
            conv.id,
            ConversationNotFound,
        ),
        (
            "list_interaction_events",
            lambda x: b.list_interaction_events(conversation_id=x),
            conv.id,
            (returned, empty_page),
        ),
        ("record_metric", lambda x: b.record_metric("m", 1.0, conversation_id=x), conv.id, ConversationNotFound),
        ("query_metrics", lambda x: b.query_metrics(conversation_id=x), conv.id, (returned, empty_page)),
        ("get_message", lambda x: b.get_message(x), message.id, (returned, None)),
        ("delete_message", lambda x: b.delete_message(x), message.id, MessageNotFound),
        ("get_memory", lambda x: b.get_memory(x), memory.id, (returned, None)),
        ("delete_memory", lambda x: b.delete_memory(x), memory.id, MemoryNotFound),
        ("get_knowledge_chunk", lambda x: b.get_knowledge_chunk(x), chunk.id, (returned, None)),
        ("delete_knowledge_chunk", lambda x: b.delete_knowledge_chunk(x), chunk.id, KnowledgeChunkNotFound),
        ("get_checkpoint_by_id", lambda x: b.get_checkpoint_by_id(x), checkpoint.id, CheckpointNotFound),
        ("revoke_api_key", lambda x: b.revoke_api_key(x), key.id, ApiKeyNotFound),
        (
            "import_conversation",
            lambda x: b.import_conversation(
                {**exported, "conversation": {**exported["conversation"], "user_id": str(x)}}
            ),
            user.id,
            UserNotFound,
        ),
    ]
    for name, call, theirs, expected in operations:
        assert await _outcome(call, theirs) == expected, f"{name} with another tenant's id"
        assert await _outcome(call, uuid.uuid4()) == expected, f"{name} with an unknown id"

    keyed: list[tuple[str, Any, Any, Any]] = [
        ("get_user_by_email", lambda x: b.get_user_by_email(x), "ada@example.com", (returned, None)),
        ("get_user_by_external_id", lambda x: b.get_user_by_external_id(x), "ext-1", (returned, None)),
        ("get_user_by_identity", lambda x: b.get_user_by_identity("discord", x), "1", (returned, None)),
        ("get_channel_config", lambda x: b.get_channel_config(x), "discord", (returned, None)),
        ("list_knowledge", lambda x: b.list_knowledge(x), "docs", (returned, empty_page)),
    ]
    for name, call, theirs, expected in keyed:
        assert await _outcome(call, theirs) == expected, f"{name} with another tenant's key"
        assert await _outcome(call, _unique("missing")) == expected, f"{name} with an unknown key"

    for listing in (
        b.list_users(),
        b.retrieve_memories(),
        b.list_tool_executions(),
        b.list_interaction_events(),
        b.query_metrics(),
        b.list_api_keys(),
    ):
        result = await listing
        assert result in ([], empty_page), result
    assert await astore.get_tenant_usage(b.tenant_id) == _usage(b, 0, 0, 0, 0, 0)
    assert await _snapshot(a, ids) == before

    # Writes keyed by natural keys create B's own rows and leave A's alone.
    b_user = await b.get_or_create_user_by_identity("discord", "1")
    assert b_user.id != user.id and b_user.tenant_id == b.tenant_id
    b_chunk = await b.upsert_knowledge("docs", "a", "b's doc")
    assert b_chunk.id != chunk.id
    assert await _snapshot(a, ids) == before


# -- knowledge --------------------------------------------------------------------------------------------------


async def test_upsert_knowledge_inserts_updates_and_skips_identical(astore, atenant):
    t = atenant
    text = "日本語のテキスト"
    inserted = await t.upsert_knowledge("docs", "intro", text, title="Intro", metadata={"lang": "ja"})
    assert (inserted.source, inserted.external_id, inserted.title, inserted.content, inserted.metadata) == (
        "docs",
        "intro",
        "Intro",
        text,
        {"lang": "ja"},
    )
    assert inserted.content_hash == hashlib.sha256(text.encode()).hexdigest()
    assert inserted.created_at == inserted.updated_at
    assert await t.get_knowledge_chunk(inserted.id) == inserted
    assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == _utf8(text) == 24

    same = await t.upsert_knowledge("docs", "intro", text, title="Intro", metadata={"lang": "ja"})
    assert same == inserted
    assert await t.get_knowledge_chunk(inserted.id) == inserted, "an identical upsert writes nothing"

    shorter = "ñ"
    updated = await t.upsert_knowledge("docs", "intro", shorter, title="Intro", metadata={"lang": "es"})
    assert (updated.id, updated.created_at, updated.content, updated.metadata) == (
        inserted.id,
        inserted.created_at,
        shorter,
        {"lang": "es"},
    )
    assert updated.updated_at > inserted.updated_at
    assert await t.get_knowledge_chunk(inserted.id) == updated
    assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == 2

    retitled = await t.upsert_knowledge("docs", "intro", shorter, title="Intro 2", metadata={"lang": "es"})
    assert retitled.title == "Intro 2" and retitled.updated_at > updated.updated_at
    assert await t.get_knowledge_chunk(inserted.id) == retitled
    assert await astore.recount_tenant_usage(t.tenant_id) == _usage(t, 0, 0, 0, 0, 2)
    assert [c.id for c in (await t.list_knowledge("docs")).items] == [inserted.id]


async def test_bulk_upsert_and_list_by_source(astore, atenant):
    t = atenant
    chunks = [{"external_id": f"doc-{n:02}", "content": f"contenu numéro {n}"} for n in range(7)]
    created = await t.upsert_knowledge_chunks("wiki", chunks)
    assert [c.external_id for c in created] == [f"doc-{n:02}" for n in range(7)]
    await t.upsert_knowledge("other", "doc-00", "not in wiki")
    total = sum(_utf8(c["content"]) for c in chunks) + _utf8("not in wiki")
    assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == total

    seen = []
    cursor = None
    while True:
        page = await t.list_knowledge("wiki", limit=3, cursor=cursor)
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [c.external_id for c in seen] == [f"doc-{n:02}" for n in range(7)]
    assert [c.id for c in seen] == [c.id for c in created]

    # Re-sending changes nothing; a changed chunk and a new one are written; a later duplicate wins.
    again = await t.upsert_knowledge_chunks(
        "wiki",
        [
            *chunks,
            {"external_id": "doc-03", "content": "first version"},
            {"external_id": "doc-03", "content": "second version", "title": "T"},
            {"external_id": "doc-99", "content": "new"},
        ],
    )
    by_ext = {c.external_id: c for c in again}
    assert by_ext["doc-00"] == created[0]
    assert (by_ext["doc-03"].id, by_ext["doc-03"].content, by_ext["doc-03"].title) == (
        created[3].id,
        "second version",
        "T",
    )
    stored = {c.external_id: c for c in (await t.list_knowledge("wiki", limit=100)).items}
    assert set(stored) == {f"doc-{n:02}" for n in range(7)} | {"doc-99"}
    assert stored["doc-03"].content == "second version"
    assert stored["doc-05"] == created[5]
    total += _utf8("second version") - _utf8(chunks[3]["content"]) + _utf8("new")
    assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == total
    assert (await astore.recount_tenant_usage(t.tenant_id)).storage_bytes == total

    with pytest.raises(InvalidInput):
        await t.upsert_knowledge_chunks("wiki", [{"external_id": "x", "content": "ok"}, {"content": "no id"}])
    with pytest.raises(InvalidInput):
        await t.upsert_knowledge_chunks("wiki", ["not a mapping"])
    assert await t.get_knowledge_chunk(uuid.uuid4()) is None
    assert "x" not in {c.external_id for c in (await t.list_knowledge("wiki", limit=100)).items}
    assert await t.upsert_knowledge_chunks("wiki", []) == []


async def test_delete_knowledge_chunk(astore, atenant):
    t = atenant
    chunk = await t.upsert_knowledge("docs", "a", "€uro")
    keep = await t.upsert_knowledge("docs", "b", "kept")
    await t.delete_knowledge_chunk(chunk.id)
    assert await t.get_knowledge_chunk(chunk.id) is None
    assert (await t.list_knowledge("docs")).items == [keep]
    assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == 4
    with pytest.raises(KnowledgeChunkNotFound):
        await t.delete_knowledge_chunk(chunk.id)
    again = await t.upsert_knowledge("docs", "a", "€uro")
    assert again.id != chunk.id
    assert (await astore.get_tenant_usage(t.tenant_id)).storage_bytes == 4 + _utf8("€uro")


# -- memories ---------------------------------------------------------------------------------------------------


async def test_store_get_retrieve_and_delete_memories(atenant):
    t = atenant
    ada = await t.create_user()
    bob = await t.create_user()
    expires = datetime.now(UTC) + timedelta(days=7)
    conv = await _conversation(t, messages=1)
    source = (await _all_history(t, conv.id))[0]
    fact = await t.store_memory(
        "likes tea",
        user_id=ada.id,
        agent_id="agent-1",
        kind=MemoryKind.PREFERENCE,
        tier="long_term",
        importance=0.9,
        source_message_ids=[source.id],
        compression_level=1,
        expires_at=expires,
        metadata={"confidence": 0.8},
    )
    assert (fact.user_id, fact.agent_id, fact.kind, fact.tier, fact.importance) == (
        ada.id,
        "agent-1",
        MemoryKind.PREFERENCE,
        MemoryTier.LONG_TERM,
        0.9,
    )
    assert (fact.source_message_ids, fact.compression_level, fact.expires_at, fact.metadata) == (
        [str(source.id)],
        1,
        expires,
        {"confidence": 0.8},
    )
    assert await t.get_memory(fact.id) == fact
    low = await t.store_memory("said hi", user_id=ada.id, importance=0.1)
    mid = await t.store_memory("works at night", user_id=ada.id, importance=0.5, tier=MemoryTier.WORKING)
    bobs = await t.store_memory("bob's", user_id=bob.id, importance=1.0)
    shared = await t.store_memory("global", importance=0.0)
    assert (low.kind, low.tier, low.user_id, shared.user_id) == (MemoryKind.FACT, MemoryTier.SHORT_TERM, ada.id, None)

    assert [m.id for m in (await t.retrieve_memories()).items] == [bobs.id, fact.id, mid.id, low.id, shared.id]
    assert [m.id for m in (await t.retrieve_memories(user_id=ada.id)).items] == [fact.id, mid.id, low.id]
    assert [m.id for m in (await t.retrieve_memories(user_id=ada.id, limit=2)).items] == [fact.id, mid.id]
    assert [m.id for m in (await t.retrieve_memories(tier="working")).items] == [mid.id]
    assert [m.id for m in (await t.retrieve_memories(user_id=bob.id, tier=MemoryTier.LONG_TERM)).items] == []

    await t.delete_memory(mid.id)
    assert await t.get_memory(mid.id) is None
    assert [m.id for m in (await t.retrieve_memories(user_id=ada.id)).items] == [fact.id, low.id]
    with pytest.raises(MemoryNotFound):
        await t.delete_memory(mid.id)
    with pytest.raises(UserNotFound):
        await t.store_memory("x", user_id=uuid.uuid4())
    with pytest.raises(InvalidInput):
        await t.retrieve_memories(tier="forever")


@pytest.mark.parametrize(
    "fields",
    [
        {"importance": 1.01},
        {"importance": -0.1},
        {"importance": float("nan")},
        {"importance": "high"},
        {"importance": True},
        {"expires_at": datetime(2030, 1, 1)},
        {"expires_at": "2030-01-01T00:00:00+00:00"},
        {"tier": "forever"},
        {"kind": "rumour"},
        {"compression_level": -1},
    ],
    ids=[
        "importance-high",
        "importance-low",
        "importance-nan",
        "importance-str",
        "importance-bool",
        "naive-expiry",
        "str-expiry",
        "tier",
        "kind",
        "compression",
    ],
)
async def test_bad_memory_fields_are_refused(atenant, fields):
    with pytest.raises(InvalidInput):
        await atenant.store_memory("x", **fields)
    assert (await atenant.retrieve_memories()).items == []


# -- agent audit and state --------------------------------------------------------------------------------------


async def test_tool_executions_keep_json_results_of_any_type(atenant):
    t = atenant
    conv = await _conversation(t)
    results = [{"hits": [1, 2]}, [1, "two", None], "plain text", 42, 1.5, True, None]
    recorded = [
        await t.record_tool_execution(
            "search",
            conversation_id=conv.id,
            action="query",
            parameters={"q": "tea"},
            result=result,
            duration_ms=12.5,
        )
        for result in results
    ]
    failed = await t.record_tool_execution("calc", success=False, error="division by zero")
    listed = (await t.list_tool_executions(conversation_id=conv.id)).items
    assert [x.result for x in listed] == list(reversed(results))
    assert listed == list(reversed(recorded))
    first = listed[-1]
    assert (first.tool, first.action, first.parameters, first.success, first.error, first.duration_ms) == (
        "search",
        "query",
        {"q": "tea"},
        True,
        None,
        12.5,
    )
    assert [x.id for x in (await t.list_tool_executions(tool="calc")).items] == [failed.id]
    assert (failed.success, failed.error, failed.conversation_id) == (False, "division by zero", None)
    assert len((await t.list_tool_executions()).items) == 8
    assert [x.id for x in (await t.list_tool_executions(limit=2)).items] == [failed.id, recorded[-1].id]
    assert (await t.list_tool_executions(tool="search", conversation_id=uuid.uuid4())).items == []
    with pytest.raises(InvalidMetadata):
        await t.record_tool_execution("search", result={1, 2})
    for duration in ("fast", float("nan"), float("inf")):
        with pytest.raises(InvalidInput):
            await t.record_tool_execution("search", duration_ms=duration)
    with pytest.raises(ConversationNotFound):
        await t.record_tool_execution("search", conversation_id=uuid.uuid4())
    with pytest.raises(InvalidInput):
        await t.record_tool_execution("")
    assert len((await t.list_tool_executions()).items) == 8


async def _pages(listing: Any, limit: int) -> list[list[Any]]:
    """Every page of ``listing(limit=..., cursor=...)``, following ``next_cursor`` until it is None."""
    pages: list[list[Any]] = []
    cursor = None
    while True:
        page = await listing(limit=limit, cursor=cursor)
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_every_cursor_listing_returns_pages_that_add_up_to_the_whole(atenant):
    t = atenant
    conv = await _conversation(t)
    user = await t.create_user(display_name="Pager")
    for n in range(5):
        await t.record_tool_execution("search", conversation_id=conv.id, result=n)
        await t.create_checkpoint(conv.id, iteration=n, state={"n": n})
        await t.record_interaction_event("approval", conversation_id=conv.id, data={"n": n})
        await t.record_metric("tokens", n, conversation_id=conv.id)
        await t.store_memory(
            f"distinct fact number {n} about paging {uuid.uuid4()}", user_id=user.id, importance=n / 10
        )
        await t.create_api_key(f"key-{n}")
    listings = {
        "list_tool_executions": lambda **kw: t.list_tool_executions(conversation_id=conv.id, **kw),
        "list_checkpoints": lambda **kw: t.list_checkpoints(conv.id, **kw),
        "list_interaction_events": lambda **kw: t.list_interaction_events(conversation_id=conv.id, **kw),
        "query_metrics": lambda **kw: t.query_metrics(conversation_id=conv.id, **kw),
        "retrieve_memories": lambda **kw: t.retrieve_memories(user_id=user.id, **kw),
        "list_api_keys": lambda **kw: t.list_api_keys(**kw),
    }
    for name, listing in listings.items():
        whole = (await listing(limit=100)).items
        assert len(whole) == 5, name
        pages = await _pages(listing, 2)
        assert [len(p) for p in pages] == [2, 2, 1], name
        # By id: reading memories counts a recall, so each read of one carries a newer count.
        assert [item.id for page in pages for item in page] == [item.id for item in whole], name
        exact = await _pages(listing, 5)
        assert [len(p) for p in exact] == [5], f"{name}: a full last page must not promise more"


async def test_checkpoints(atenant):
    t = atenant
    conv = await _conversation(t)
    assert await t.get_latest_checkpoint(conv.id) is None
    c1 = await t.create_checkpoint(conv.id, iteration=1, state={"step": 1}, name="start", context_summary="began")
    c2 = await t.create_checkpoint(conv.id, iteration=2, state={"step": 2})
    c3 = await t.create_checkpoint(conv.id, iteration=3, state={"step": 3, "plan": ["a", "b"]})
    assert (c1.parent_id, c2.parent_id, c3.parent_id) == (None, c1.id, c2.id)
    assert (c1.name, c1.context_summary, c3.state) == ("start", "began", {"step": 3, "plan": ["a", "b"]})
    assert await t.get_latest_checkpoint(conv.id) == c3
    assert await t.get_checkpoint(conv.id, iteration=2) == c2
    assert await t.get_checkpoint_by_id(c1.id) == c1
    assert (await t.list_checkpoints(conv.id)).items == [c3, c2, c1]
    assert (await t.list_checkpoints(conv.id, limit=2)).items == [c3, c2]
    with pytest.raises(CheckpointNotFound):
        await t.get_checkpoint(conv.id, iteration=9)
    with pytest.raises(InvalidInput):
        await t.get_checkpoint(conv.id, iteration="2")
    with pytest.raises(CheckpointNotFound):
        await t.get_checkpoint_by_id(uuid.uuid4())

    root = await t.create_checkpoint(conv.id, iteration=4, state={}, parent_id=None)
    branch = await t.create_checkpoint(conv.id, iteration=4, state={"retry": True}, parent_id=c1.id)
    assert (root.parent_id, branch.parent_id) == (None, c1.id)
    assert await t.get_checkpoint(conv.id, iteration=4) == branch, "the newest one saved at that iteration"

    assert await t.prune_checkpoints(conv.id, keep=2) == 3
    assert (await t.list_checkpoints(conv.id)).items == [branch, root]
    assert await t.prune_checkpoints(conv.id, keep=2) == 0
    assert await t.prune_checkpoints(conv.id, keep=0) == 2
    assert (await t.list_checkpoints(conv.id)).items == []
    with pytest.raises(InvalidInput):
        await t.prune_checkpoints(conv.id, keep=-1)
    with pytest.raises(InvalidInput):
        await t.create_checkpoint(conv.id, iteration=-1, state={})
    with pytest.raises(InvalidMetadata):
        await t.create_checkpoint(conv.id, iteration=1, state=["not", "a", "dict"])
    with pytest.raises(ConversationNotFound):
        await t.create_checkpoint(uuid.uuid4(), iteration=1, state={})
    assert (await t.list_checkpoints(conv.id)).items == []


async def test_interaction_events(atenant):
    t = atenant
    conv = await _conversation(t)
    other = await _conversation(t)
    checkpoint = await t.create_checkpoint(conv.id, iteration=1, state={})
    approval = await t.record_interaction_event(
        "approval", conversation_id=conv.id, checkpoint_id=checkpoint.id, data={"ok": True}
    )
    change = await t.record_interaction_event("goal_change", conversation_id=conv.id, goal_modified=True)
    elsewhere = await t.record_interaction_event("correction", conversation_id=other.id)
    loose = await t.record_interaction_event("note")
    assert (approval.checkpoint_id, approval.data, approval.goal_modified) == (checkpoint.id, {"ok": True}, False)
    assert change.goal_modified is True
    assert (await t.list_interaction_events(conversation_id=conv.id)).items == [change, approval]
    assert [e.id for e in (await t.list_interaction_events()).items] == [loose.id, elsewhere.id, change.id, approval.id]
    assert [e.id for e in (await t.list_interaction_events(limit=1)).items] == [loose.id]
    with pytest.raises(InvalidInput):
        await t.record_interaction_event("")
    with pytest.raises(ConversationNotFound):
        await t.record_interaction_event("note", conversation_id=uuid.uuid4())
    assert len((await t.list_interaction_events()).items) == 4


async def test_metrics_record_and_query(atenant):
    t = atenant
    conv = await _conversation(t)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    latency = await t.record_metric("latency_ms", 120, conversation_id=conv.id, labels={"model": "m"}, recorded_at=base)
    bulk = await t.record_metrics(
        [
            {"metric_type": "latency_ms", "value": 80.5, "recorded_at": base + timedelta(minutes=1)},
            {
                "metric_type": "tokens",
                "value": 3,
                "conversation_id": conv.id,
                "recorded_at": base + timedelta(minutes=2),
            },
            # Another offset: the same instant comes back in UTC.
            {
                "metric_type": "tokens",
                "value": 4,
                "recorded_at": (base + timedelta(minutes=3)).astimezone(timezone(timedelta(hours=2))),
            },
        ]
    )
    assert (latency.value, latency.labels, latency.conversation_id) == (120.0, {"model": "m"}, conv.id)
    assert [m.id for m in (await t.query_metrics()).items] == [bulk[2].id, bulk[1].id, bulk[0].id, latency.id]
    assert [m.id for m in (await t.query_metrics(metric_type="tokens")).items] == [bulk[2].id, bulk[1].id]
    assert [m.id for m in (await t.query_metrics(conversation_id=conv.id)).items] == [bulk[1].id, latency.id]
    assert [m.id for m in (await t.query_metrics(since=base + timedelta(minutes=1))).items] == [
        bulk[2].id,
        bulk[1].id,
        bulk[0].id,
    ]
    assert [
        m.id for m in (await t.query_metrics(metric_type="latency_ms", since=base + timedelta(seconds=30))).items
    ] == [bulk[0].id]
    assert [m.id for m in (await t.query_metrics(limit=1)).items] == [bulk[2].id]
    stored = ((await t.query_metrics(metric_type="tokens", limit=1)).items)[0]
    assert stored.recorded_at == base + timedelta(minutes=3)
    _assert_utc(stored.recorded_at)
    assert stored.value == 4.0

    recent = await t.record_metric("latency_ms", 1.0)
    _assert_utc(recent.recorded_at)
    assert ((await t.query_metrics(limit=1)).items)[0].id == recent.id
    for bad in (True, "fast", None, float("nan"), float("inf"), -float("inf")):
        with pytest.raises(InvalidInput):
            await t.record_metric("latency_ms", bad)
    for when in (datetime(2024, 1, 1), "2024-01-01T00:00:00+00:00", 1700000000):
        with pytest.raises(InvalidInput):
            await t.record_metric("latency_ms", 1.0, recorded_at=when)
        with pytest.raises(InvalidInput):
            await t.query_metrics(since=when)
    with pytest.raises(InvalidInput):
        await t.record_metrics([{"metric_type": "ok", "value": 1}, {"metric_type": "", "value": 1}])
    with pytest.raises(ConversationNotFound):
        await t.record_metric("latency_ms", 1.0, conversation_id=uuid.uuid4())
    assert len((await t.query_metrics()).items) == 5


# -- export / import --------------------------------------------------------------------------------------------


def _without_owner(export: dict[str, Any]) -> dict[str, Any]:
    return {**export, "conversation": {k: v for k, v in export["conversation"].items() if k != "user_id"}}


async def test_export_import_round_trip_into_another_tenant(astore, atenant):
    a = atenant
    user = await a.create_user()
    conv = await a.create_conversation(user.id, title="Trip", channel="discord", metadata={"k": [1, 2]})
    await a.add_message(conv.id, role="system", content="be brief")
    await a.add_message(conv.id, role="user", content="où ?", prompt_tokens=4, idempotency_key="q1")
    await a.add_message(
        conv.id, role="assistant", content="ici", model="m", completion_tokens=9, metadata={"score": 0.5}
    )
    dropped = await a.add_message(conv.id, role="user", content="dropped")
    await a.delete_message(dropped.id)
    await a.archive_conversation(conv.id)
    exported = await a.export_conversation(conv.id)
    assert json.loads(json.dumps(exported)) == exported, "an export is plain JSON"
    assert [m["seq"] for m in exported["messages"]] == [1, 2, 3]

    b = await _other_tenant(astore)
    b_user = await b.create_user()
    imported = await b.import_conversation(exported, user_id=b_user.id)
    assert (imported.id, imported.user_id, imported.tenant_id) == (conv.id, b_user.id, b.tenant_id)
    assert (imported.message_count, imported.total_tokens, imported.status) == (3, 13, ConversationStatus.ARCHIVED)
    again = await b.export_conversation(imported.id)
    assert again["conversation"]["user_id"] == str(b_user.id)
    assert _without_owner(again) == _without_owner(exported)
    size = _utf8("be brief") + _utf8("où ?") + _utf8("ici")
    assert await astore.get_tenant_usage(b.tenant_id) == _usage(b, 1, 1, 3, 13, size)
    assert await astore.recount_tenant_usage(b.tenant_id) == _usage(b, 1, 1, 3, 13, size)
    assert (await b.add_message(imported.id, role="user", content="next")).seq == 4
    replay = await b.add_message(imported.id, role="user", content="où ?", prompt_tokens=4, idempotency_key="q1")
    assert replay.seq == 2, "idempotency keys travel with the export"
    with pytest.raises(UserNotFound):
        await b.import_conversation(exported)  # the exported owner does not exist in B


async def test_import_into_the_same_tenant_needs_new_ids(astore, atenant):
    t = atenant
    conv = await _conversation(t, messages=3)
    exported = await t.export_conversation(conv.id)
    usage = await astore.get_tenant_usage(t.tenant_id)
    with pytest.raises(ConflictError):
        await t.import_conversation(exported)
    assert await astore.get_tenant_usage(t.tenant_id) == usage
    copy = await t.import_conversation(exported, new_ids=True)
    assert copy.id != conv.id and copy.user_id == conv.user_id
    copied = await t.export_conversation(copy.id)
    assert {m["id"] for m in copied["messages"]}.isdisjoint({m["id"] for m in exported["messages"]})

    def strip(export: dict[str, Any]) -> dict[str, Any]:
        return {
            **export,
            "conversation": {k: v for k, v in export["conversation"].items() if k != "id"},
            "messages": [{k: v for k, v in m.items() if k != "id"} for m in export["messages"]],
        }

    assert strip(copied) == strip(exported)
    listed = {c.id for c in (await t.list_conversations(conv.user_id)).items}
    assert listed == {conv.id, copy.id}
    assert (await astore.get_tenant_usage(t.tenant_id)).messages == 6


async def test_malformed_exports_are_refused(astore, atenant):
    t = atenant
    conv = await _conversation(t, messages=2)
    good = await t.export_conversation(conv.id)
    usage = await astore.get_tenant_usage(t.tenant_id)
    message = good["messages"][0]
    broken: list[Any] = [
        {},
        "not a dict",
        {**good, "format": "something.else"},
        {**good, "version": 99},
        {**good, "messages": "nope"},
        {k: v for k, v in good.items() if k != "conversation"},
        {**good, "messages": [message, message]},
        {**good, "messages": [{**message, "seq": 0}]},
        {**good, "messages": [{**message, "seq": "x"}]},
        {**good, "messages": [{**message, "role": "robot"}]},
        {**good, "messages": [{**message, "content": "a\x00"}]},
        {**good, "messages": [{**message, "created_at": "yesterday"}]},
        {**good, "messages": [{**message, "created_at": "2024-01-01T00:00:00"}]},
        {**good, "messages": [{**message, "id": "not-a-uuid"}]},
        {**good, "conversation": {**good["conversation"], "status": "deleted"}},
        {**good, "conversation": {**good["conversation"], "started_at": None}},
    ]
    for data in broken:
        with pytest.raises(InvalidInput):
            await t.import_conversation(data, new_ids=True)
    assert await astore.get_tenant_usage(t.tenant_id) == usage
    assert [c.id for c in (await t.list_conversations(conv.user_id)).items] == [conv.id]


# -- timestamps -------------------------------------------------------------------------------------------------


async def test_timestamps_are_utc_on_every_path(astore, atenant):
    t = atenant
    created_tenant = await astore.get_tenant_or_raise(t.tenant_id)
    user = await t.get_or_create_user_by_identity("discord", "1")
    conv = await t.create_conversation(user.id)
    message = await t.add_message(conv.id, role="user", content="hi")
    memory = await t.store_memory("x", user_id=user.id, expires_at=datetime(2030, 1, 1, 12, tzinfo=UTC))
    chunk = await t.upsert_knowledge("docs", "a", "x")
    tool = await t.record_tool_execution("search", conversation_id=conv.id)
    checkpoint = await t.create_checkpoint(conv.id, iteration=1, state={})
    event = await t.record_interaction_event("note", conversation_id=conv.id)
    metric = await t.record_metric("m", 1.0)
    key, _secret = await t.create_api_key("ci")
    await t.revoke_api_key(key.id)
    config = await t.set_channel_config("discord")
    _assert_utc(
        created_tenant.created_at,
        created_tenant.updated_at,
        user.created_at,
        conv.started_at,
        message.created_at,
        memory.created_at,
        chunk.updated_at,
        tool.created_at,
        checkpoint.created_at,
        event.created_at,
        metric.recorded_at,
        key.created_at,
        config.updated_at,
    )
    (identity,) = await t.list_identities(user.id)
    (revoked,) = (await t.list_api_keys()).items
    stored_conv = await t.get_conversation_or_raise(conv.id)
    stored_memory = await t.get_memory(memory.id)
    stats = await t.get_conversation_stats(conv.id)
    _assert_utc(
        (await astore.update_tenant_config(t.tenant_id, plan="pro")).updated_at,
        (await t.get_user(user.id)).updated_at,
        (await t.update_user(user.id, display_name="x")).updated_at,
        identity.created_at,
        stored_conv.started_at,
        stored_conv.last_activity_at,
        (await t.update_conversation(conv.id, title="t")).last_activity_at,
        (await t.get_message(message.id)).created_at,
        (await _all_history(t, conv.id))[0].created_at,
        stored_memory.created_at,
        stored_memory.expires_at,
        (await t.get_knowledge_chunk(chunk.id)).created_at,
        ((await t.list_tool_executions()).items)[0].created_at,
        (await t.get_checkpoint_by_id(checkpoint.id)).created_at,
        ((await t.list_interaction_events()).items)[0].created_at,
        ((await t.query_metrics()).items)[0].recorded_at,
        revoked.created_at,
        revoked.revoked_at,
        (await t.get_channel_config("discord")).updated_at,
        stats.first_message_at,
        stats.last_message_at,
    )
    assert stored_memory.expires_at == datetime(2030, 1, 1, 12, tzinfo=UTC)
    assert (await t.get_message(message.id)).created_at == message.created_at


async def test_conversations_by_external_id(atenant: AsyncTenantStore) -> None:
    t = atenant
    user = await t.create_user(display_name="Ada")
    made = await t.create_conversation(user.id, title="Lisbon", external_id="session-42")
    assert made.external_id == "session-42"
    assert await t.get_conversation_by_external_id("session-42") == made
    assert await t.get_conversation_by_external_id("session-43") is None
    with pytest.raises(ConflictError):
        await t.create_conversation(user.id, external_id="session-42")
    same = await t.get_or_create_conversation_by_external_id("session-42", user_id=user.id)
    assert same.id == made.id
    other = await t.get_or_create_conversation_by_external_id("thread-7", user_id=user.id, title="New")
    assert other.id != made.id and other.title == "New" and other.external_id == "thread-7"
    with pytest.raises(UserNotFound):
        await t.get_or_create_conversation_by_external_id("thread-8", user_id=uuid.uuid4())
    # Another tenant's key is another conversation.
    other_tenant = t.store.tenant((await t.store.create_tenant(f"ext-{uuid.uuid4().hex[:8]}")).id)
    assert await other_tenant.get_conversation_by_external_id("session-42") is None
