"""The routes that brought the store's remaining operations to HTTP, through ``AsyncClient`` against the real service
on loopback (``live_api``), on SQLite and PostgreSQL: what each answers (compared with the store's own view),
another tenant's key not reaching the objects, and read-only keys refused on every write.

(``tests/test_route_coverage.py`` checks that each operation has its route and client method; this file that the
routes work.)
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mnemostore import (
    AsyncClient,
    AsyncMnemoStore,
    ChannelConfigNotFound,
    CheckpointNotFound,
    ConfigurationError,
    ConversationNotFound,
    InvalidInput,
    MemoryKind,
    MemoryNotFound,
    MemoryTier,
    RateLimited,
    ReadOnlyKey,
    SessionNotFound,
    TenantNotFound,
    UserNotFound,
)
from tests.fix_api import ADMIN_KEY, LiveServer


def _name() -> str:
    return f"parity-{uuid.uuid4().hex[:12]}"


class Tenant:
    """A tenant made through the admin API, with a client on its read-write key and one on its read-only key."""

    def __init__(self, tenant_id: uuid.UUID, name: str, client: AsyncClient, read_only: AsyncClient) -> None:
        self.id, self.name, self.client, self.read_only = tenant_id, name, client, read_only


@pytest.fixture
async def admin(live_api: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live_api.url, admin_key=ADMIN_KEY, timeout=30, retries=0) as client:
        yield client


async def _tenant(admin: AsyncClient, live_api: LiveServer) -> AsyncIterator[Tenant]:
    name = _name()
    tenant = await admin.create_tenant(name)
    _, key = await admin.create_tenant_api_key(tenant.id, "rw")
    _, read_only_key = await admin.create_tenant_api_key(tenant.id, "ro", read_only=True)
    async with (
        AsyncClient(live_api.url, api_key=key, timeout=30, retries=0) as client,
        AsyncClient(live_api.url, api_key=read_only_key, timeout=30, retries=0) as read_only,
    ):
        yield Tenant(tenant.id, name, client, read_only)


@pytest.fixture
async def t(admin: AsyncClient, live_api: LiveServer) -> AsyncIterator[Tenant]:
    async for made in _tenant(admin, live_api):
        yield made


@pytest.fixture
async def other(admin: AsyncClient, live_api: LiveServer) -> AsyncIterator[Tenant]:
    async for made in _tenant(admin, live_api):
        yield made


async def test_channel_config_sessions_and_presence(t: Tenant, other: Tenant, astore: AsyncMnemoStore):
    c = t.client
    with pytest.raises(ChannelConfigNotFound):
        await c.get_channel_config("discord")
    config = await c.set_channel_config("discord", default_model="gpt-4o-mini", rate_limits={"user": "2/minute"})
    assert config == await astore.tenant(t.id).get_channel_config("discord")
    assert (await c.get_channel_config("discord")).default_model == "gpt-4o-mini"
    with pytest.raises(ChannelConfigNotFound):
        await other.client.get_channel_config("discord")

    with pytest.raises(SessionNotFound):
        await c.get_session("discord", "81234")
    user = await c.get_or_create_user_by_identity("discord", "81234")
    chat = await c.create_conversation(user.id, channel="discord")
    session = await c.get_session("discord", "81234")
    assert (session.user_id, session.conversation_id, session.model) == (user.id, chat.id, "gpt-4o-mini")
    changed = await c.update_session("discord", "81234", model="gpt-4o", data={"step": 2})
    assert (changed.model, changed.data, changed.conversation_id) == ("gpt-4o", {"step": 2}, chat.id)
    cleared = await c.update_session("discord", "81234", conversation_id=None)
    assert cleared.conversation_id is None and cleared.model == "gpt-4o"
    assert (await c.touch_session("discord", "81234")).last_activity_at >= changed.last_activity_at
    with pytest.raises(SessionNotFound):  # the identity is this tenant's only
        await other.client.get_session("discord", "81234")
    with pytest.raises(UserNotFound):
        await other.client.update_session("discord", "81234", user_id=user.id)
    await c.end_session("discord", "81234")
    await c.end_session("discord", "81234")  # gone already: fine
    assert (await c.get_session("discord", "81234")).model == "gpt-4o-mini"  # rebuilt from the database

    another = await c.create_user(display_name="Bo")
    await c.mark_user_active("web", user.id)
    await c.mark_user_active("web", another.id)
    assert set(await c.active_users("web")) == {user.id, another.id}
    assert await c.count_active_users("web") == 2
    await c.mark_user_inactive("web", another.id)
    assert await c.active_users("web") == [user.id]
    assert await other.client.count_active_users("web") == 0
    with pytest.raises(UserNotFound):
        await other.client.mark_user_active("web", user.id)

    first = await c.rate_limit(user_id=user.id, channel="discord")
    assert (first.allowed, first.scope, first.limit, first.remaining) == (True, "user", 2, 1)
    await c.rate_limit(user_id=user.id, channel="discord")
    refused = await c.rate_limit(user_id=user.id, channel="discord", raise_on_limit=False)
    assert (refused.allowed, refused.scope) == (False, "user") and refused.retry_after > 0
    with pytest.raises(RateLimited):
        await c.rate_limit(user_id=user.id, channel="discord")
    assert (await c.rate_limit(user_id=another.id, channel="discord")).allowed  # the limit is per user
    with pytest.raises(UserNotFound):
        await other.client.rate_limit(user_id=user.id)


async def test_feature_flags(t: Tenant, other: Tenant, admin: AsyncClient):
    c = t.client
    user = await c.create_user()
    flag = f"flag-{uuid.uuid4().hex[:8]}"
    assert await c.feature_enabled(flag) is False
    await c.set_feature_flag(flag, True)
    assert await c.feature_enabled(flag) and await c.feature_enabled(flag, user_id=user.id)
    await c.set_feature_flag(flag, False, channel="telegram")
    assert await c.feature_enabled(flag, channel="telegram") is False and await c.feature_enabled(flag)
    assert await other.client.feature_enabled(flag) is False  # the tenant's flags are its own
    await c.delete_feature_flag(flag, channel="telegram")
    assert await c.feature_enabled(flag, channel="telegram")
    await c.set_feature_flag(flag, {"variants": {"a": 1, "b": 1}})
    variant = await c.feature_variant(flag, user_id=user.id)
    assert variant in ("a", "b") and await c.feature_variant(flag, user_id=user.id) == variant
    await c.set_feature_flag(flag, None)
    assert await c.feature_enabled(flag) is False
    with pytest.raises(InvalidInput):
        await c.set_feature_flag(flag, "sometimes")

    await admin.set_global_feature_flag(flag, True)
    try:
        assert await c.feature_enabled(flag) and await other.client.feature_enabled(flag)
        await c.set_feature_flag(flag, False)
        assert await c.feature_enabled(flag) is False  # the tenant's value wins over the global one
    finally:
        await admin.delete_global_feature_flag(flag)
    assert await other.client.feature_enabled(flag) is False
    with pytest.raises(ConfigurationError, match="admin key"):
        await c.set_global_feature_flag(flag, True)  # a tenant key is not the admin's


async def test_users_by_their_keys_and_erasure(t: Tenant, other: Tenant, astore: AsyncMnemoStore):
    c = t.client
    ada = await c.get_or_create_user_by_email("ada@Example.com", display_name="Ada")
    assert (await c.get_or_create_user_by_email("ada@example.COM")).id == ada.id
    assert (ada.email, ada.display_name) == ("ada@example.com", "Ada")
    bo = await c.get_or_create_user_by_external_id("crm-7", display_name="Bo")
    assert (await c.get_or_create_user_by_external_id("crm-7")).id == bo.id
    await c.link_identity(bo.id, "telegram", "555")
    assert (await c.get_user_by_email("ada@example.com")).id == ada.id
    assert (await c.get_user_by_external_id("crm-7")).id == bo.id
    assert (await c.get_user_by_identity("telegram", "555")).id == bo.id
    for lookup in (
        other.client.get_user_by_email("ada@example.com"),
        other.client.get_user_by_external_id("crm-7"),
        other.client.get_user_by_identity("telegram", "555"),
        c.get_user_by_external_id("nobody"),
    ):
        with pytest.raises(UserNotFound):
            await lookup

    chat = await c.create_conversation(bo.id)
    await c.add_message(chat.id, role="user", content="hello")
    await c.store_memory("likes tea", user_id=bo.id)
    with pytest.raises(UserNotFound):
        await other.client.erase_user(bo.id)
    removed = await c.erase_user(bo.id)
    assert next(iter(removed)) == "users" and removed["users"] == 1 and removed["messages"] == 1
    assert removed["memories"] == 1 and removed["user_identities"] == 1
    assert await astore.tenant(t.id).get_user(bo.id) is None
    with pytest.raises(UserNotFound):
        await c.erase_user(bo.id)


async def test_conversations_by_external_id_counting_clearing_and_consolidating(t: Tenant, other: Tenant):
    c = t.client
    user = await c.create_user()
    chat = await c.get_or_create_conversation_by_external_id("thread-1", user_id=user.id, title="Lisbon")
    assert (await c.get_or_create_conversation_by_external_id("thread-1", user_id=user.id)).id == chat.id
    assert (await c.get_conversation_by_external_id("thread-1")).title == "Lisbon"
    with pytest.raises(ConversationNotFound):
        await other.client.get_conversation_by_external_id("thread-1")
    with pytest.raises(UserNotFound):
        await other.client.get_or_create_conversation_by_external_id("thread-9", user_id=user.id)

    for i in range(5):
        await c.add_message(chat.id, role="user", content=f"I want a hotel near Alfama, note {i}.")
    assert await c.count_messages(chat.id) == 5
    segment = await c.consolidate_conversation(chat.id, keep_recent=2, min_messages=1)
    assert segment is not None and segment.kind is MemoryKind.SUMMARY and segment.user_id == user.id
    assert len(segment.source_message_ids) == 3 and segment.metadata["conversation_id"] == str(chat.id)
    assert await c.consolidate_conversation(chat.id, keep_recent=2, min_messages=1) is None  # nothing new

    await c.create_checkpoint(chat.id, iteration=1, state={"n": 1})
    await c.create_checkpoint(chat.id, iteration=2, state={"n": 2})
    third = await c.create_checkpoint(chat.id, iteration=3, state={"n": 3})
    assert (await c.get_checkpoint(chat.id, iteration=2)).state == {"n": 2}
    with pytest.raises(CheckpointNotFound):
        await c.get_checkpoint(chat.id, iteration=9)
    for call in (
        other.client.count_messages(chat.id),
        other.client.delete_messages(chat.id),
        other.client.consolidate_conversation(chat.id),
        other.client.prune_checkpoints(chat.id, keep=0),
    ):
        with pytest.raises(ConversationNotFound):
            await call
    with pytest.raises(CheckpointNotFound):
        await other.client.get_checkpoint(chat.id, iteration=2)
    assert await c.prune_checkpoints(chat.id, keep=1) == 2
    assert [k.id for k in (await c.list_checkpoints(chat.id)).items] == [third.id]

    assert await c.delete_messages(chat.id) == 5
    assert await c.count_messages(chat.id) == 0 and (await c.get_conversation(chat.id)).id == chat.id


async def test_memory_updates_segments_and_bulk_deletes(t: Tenant, other: Tenant, astore: AsyncMnemoStore):
    c = t.client
    user = await c.create_user()
    memory = await c.store_memory("Ada is vegetarian", user_id=user.id, agent_id="chef")
    updated = await c.update_memory(memory.id, content="Ada is vegan", tier=MemoryTier.LONG_TERM, importance=0.9)
    assert (updated.content, updated.tier, updated.importance) == ("Ada is vegan", MemoryTier.LONG_TERM, 0.9)
    assert updated == await astore.tenant(t.id).get_memory(memory.id)
    assert [v.content for v in await c.get_memory_history(memory.id)] == ["Ada is vegetarian"]
    with pytest.raises(MemoryNotFound):
        await other.client.update_memory(memory.id, content="hijacked")
    with pytest.raises(InvalidInput):
        await c.update_memory(memory.id, content=None)  # type: ignore[arg-type]

    message = await c.add_message((await c.create_conversation(user.id)).id, role="user", content="hi")
    segment = await c.add_memory_segment("Ada said hi", source_message_ids=[message.id], user_id=user.id)
    assert (segment.kind, segment.compression_level, segment.source_message_ids) == (
        MemoryKind.SUMMARY,
        1,
        [str(message.id)],
    )
    with pytest.raises(InvalidInput):
        await c.delete_memories()
    assert await other.client.delete_memories(user_id=user.id) == 0
    assert await c.delete_memories(user_id=user.id, agent_id="chef") == 1
    assert await c.delete_memories(user_id=user.id) == 1
    assert (await c.retrieve_memories(user_id=user.id)).items == []


async def test_knowledge_by_external_ids(t: Tenant, other: Tenant):
    c = t.client
    await c.upsert_knowledge_chunks("handbook", [{"external_id": f"p{i}", "content": f"page {i}"} for i in range(4)])
    found = await c.get_knowledge_chunks("handbook", ["p2", "p0", "missing"])
    assert sorted(chunk.external_id for chunk in found) == ["p0", "p2"]
    assert await other.client.get_knowledge_chunks("handbook", ["p0"]) == []
    assert await other.client.delete_knowledge_chunks("handbook", ["p0"]) == 0
    assert await c.delete_knowledge_chunks("handbook", ["p0", "p1", "missing"]) == 2
    assert [chunk.external_id for chunk in (await c.list_knowledge("handbook")).items] == ["p2", "p3"]


def _manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return dict(json.load(io.TextIOWrapper(member, encoding="utf-8")))


async def test_own_tenant_indexing_and_export(t: Tenant, other: Tenant, tmp_path: Path):
    c = t.client
    assert (await c.get_own_tenant()).id == t.id
    assert (await t.read_only.get_own_tenant()).name == t.name
    ada = await c.create_user(display_name="Ada")
    bo = await c.create_user(display_name="Bo")
    await c.add_message((await c.create_conversation(ada.id)).id, role="user", content="hello")
    status = await c.indexing_status()
    assert status.pending + status.running + status.done + status.failed >= 1

    whole = await t.read_only.export(tmp_path / "tenant.tar.gz")  # an export only reads
    manifest = _manifest(whole)
    assert manifest["scope"]["kind"] == "tenant" and manifest["scope"]["tenant_id"] == str(t.id)
    rows = {table["name"]: table["rows"] for table in manifest["tables"]}
    assert rows["users"] == 2 and rows["messages"] == 1

    mine = _manifest(await c.export(tmp_path / "ada.tar.gz", user_id=ada.id))
    assert mine["scope"] == {**mine["scope"], "kind": "user", "user_id": str(ada.id)}
    assert {table["name"]: table["rows"] for table in mine["tables"]}["users"] == 1
    with pytest.raises(UserNotFound):
        await other.client.export(tmp_path / "stolen.tar.gz", user_id=bo.id)
    assert not (tmp_path / "stolen.tar.gz").exists()


async def test_tenant_admin_lookup_recount_flush_and_maintenance(t: Tenant, admin: AsyncClient):
    assert (await admin.get_tenant_by_name(t.name)).id == t.id
    with pytest.raises(TenantNotFound):
        await admin.get_tenant_by_name(_name())
    await t.client.create_user()
    usage = await admin.recount_tenant_usage(t.id)
    assert usage.users == 1 and usage == await admin.get_tenant_usage(t.id)
    assert await admin.flush_cache(t.id) >= 0
    report = await admin.run_maintenance(t.id, dry_run=True)
    assert report.tenant_id == t.id and report.expired_memories == 0
    for call in (
        admin.flush_cache(uuid.uuid4()),
        admin.run_maintenance(uuid.uuid4()),
        admin.recount_tenant_usage(uuid.uuid4()),
    ):
        with pytest.raises(TenantNotFound):
            await call
    with pytest.raises(ConfigurationError, match="admin key"):
        await t.client.run_maintenance(t.id)


async def test_read_only_keys_may_not_write(t: Tenant):
    c, ro = t.client, t.read_only
    user = await c.get_or_create_user_by_identity("discord", "42")
    chat = await c.create_conversation(user.id)
    memory = await c.store_memory("likes tea", user_id=user.id)
    message = await c.add_message(chat.id, role="user", content="hi")
    writes = [
        ro.set_channel_config("discord"),
        ro.update_session("discord", "42", model="m"),
        ro.touch_session("discord", "42"),
        ro.end_session("discord", "42"),
        ro.mark_user_active("discord", user.id),
        ro.mark_user_inactive("discord", user.id),
        ro.rate_limit(user_id=user.id),
        ro.set_feature_flag("f", True),
        ro.delete_feature_flag("f"),
        ro.get_or_create_user_by_email("x@example.com"),
        ro.get_or_create_user_by_external_id("x"),
        ro.erase_user(user.id),
        ro.get_or_create_conversation_by_external_id("x", user_id=user.id),
        ro.consolidate_conversation(chat.id),
        ro.delete_messages(chat.id),
        ro.prune_checkpoints(chat.id, keep=0),
        ro.update_memory(memory.id, content="x"),
        ro.add_memory_segment("x", source_message_ids=[message.id]),
        ro.delete_memories(user_id=user.id),
        ro.delete_knowledge_chunks("s", ["x"]),
    ]
    for write in writes:
        with pytest.raises(ReadOnlyKey):
            await write
    # The reads answer.
    assert (await ro.get_session("discord", "42")).user_id == user.id
    assert (await ro.get_user_by_identity("discord", "42")).id == user.id
    assert await ro.count_messages(chat.id) == 1 and await ro.feature_enabled("f") is False
    assert await ro.active_users("discord") == [] and await ro.count_active_users("discord") == 0
    assert (await ro.get_memory(memory.id)).content == "likes tea"
