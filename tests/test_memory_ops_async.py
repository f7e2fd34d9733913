"""Memory operations on SQLite and PostgreSQL: filters, updates and history, near-duplicates (textual rule),
segments, consolidation and retention (async; ``tests/test_memory_ops.py`` is generated from this file).

The semantic near-duplicate rule, with the real model, is in ``tests/test_memory_semantic.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from mnemostore import (
    AsyncMnemoStore,
    AsyncTenantStore,
    ConfigurationError,
    ConversationNotFound,
    ConversationStatus,
    InvalidInput,
    LLMSummarizer,
    MemoryKind,
    MemoryNotFound,
    MemoryTier,
    Message,
    NewMessage,
    Settings,
    SummarizationError,
)


@pytest.fixture(scope="module")
async def plain_store(database_url: str) -> AsyncIterator[AsyncMnemoStore]:
    """A store without an embedder: near-duplicates follow the textual rule."""
    store = AsyncMnemoStore(settings=Settings(database_url=database_url, embedder="none"))
    yield store
    await store.close()


@pytest.fixture
async def plain(plain_store: AsyncMnemoStore) -> AsyncTenantStore:
    tenant = await plain_store.create_tenant(f"tenant-{uuid.uuid4().hex[:12]}")
    return plain_store.tenant(tenant.id)


async def _user(t: AsyncTenantStore) -> uuid.UUID:
    return (await t.create_user(display_name="Ada")).id


async def test_retrieve_filters_kind_agent_and_expiry(atenant: AsyncTenantStore) -> None:
    uid = await _user(atenant)
    past = datetime.now(UTC) - timedelta(minutes=1)
    await atenant.store_memory("likes tea", user_id=uid, kind="preference", agent_id="a1", dedup=False)
    await atenant.store_memory("lives in Oslo", user_id=uid, kind="fact", agent_id="a2", dedup=False)
    await atenant.store_memory("old plan", user_id=uid, kind="fact", expires_at=past, dedup=False)
    assert [m.content for m in (await atenant.retrieve_memories(user_id=uid, kind=MemoryKind.PREFERENCE)).items] == [
        "likes tea"
    ]
    assert [m.content for m in (await atenant.retrieve_memories(agent_id="a2")).items] == ["lives in Oslo"]
    contents = {m.content for m in (await atenant.retrieve_memories(user_id=uid)).items}
    assert contents == {"likes tea", "lives in Oslo"}
    everything = (await atenant.retrieve_memories(user_id=uid, include_expired=True)).items
    assert {m.content for m in everything} == {"likes tea", "lives in Oslo", "old plan"}
    with pytest.raises(InvalidInput):
        await atenant.retrieve_memories(kind="gossip")


async def test_update_memory_keeps_history(atenant: AsyncTenantStore) -> None:
    memory = await atenant.store_memory("works at Acme", importance=0.4)
    assert await atenant.get_memory_history(memory.id) == []
    updated = await atenant.update_memory(memory.id, content="works at Globex", importance=0.7)
    assert (updated.content, updated.importance, updated.id) == ("works at Globex", 0.7, memory.id)
    await atenant.update_memory(memory.id, tier=MemoryTier.LONG_TERM)  # a tier change is kept too
    await atenant.update_memory(memory.id, content="works at Initech")
    history = await atenant.get_memory_history(memory.id)
    assert [(h.content, h.importance, h.tier, h.reason) for h in history] == [
        ("works at Acme", 0.4, MemoryTier.SHORT_TERM, "update"),
        ("works at Globex", 0.7, MemoryTier.SHORT_TERM, "update"),
        ("works at Globex", 0.7, MemoryTier.LONG_TERM, "update"),
    ]
    assert all(h.memory_id == memory.id for h in history)
    current = await atenant.get_memory_or_raise(memory.id)
    assert (current.content, current.tier) == ("works at Initech", MemoryTier.LONG_TERM)
    with pytest.raises(MemoryNotFound):
        await atenant.update_memory(uuid.uuid4(), content="x")
    with pytest.raises(MemoryNotFound):
        await atenant.get_memory_history(uuid.uuid4())
    with pytest.raises(InvalidInput):
        await atenant.update_memory(memory.id, importance=2.0)


async def test_update_memory_expiry_can_be_cleared(atenant: AsyncTenantStore) -> None:
    soon = datetime.now(UTC) + timedelta(days=1)
    memory = await atenant.store_memory("temporary", expires_at=soon)
    assert (await atenant.update_memory(memory.id, expires_at=None)).expires_at is None


async def test_textual_near_duplicate_merges_and_keeps_old_text(plain: AsyncTenantStore) -> None:
    uid = await _user(plain)
    first = await plain.store_memory("The user's favourite colour is blue.", user_id=uid, importance=0.3)
    again = await plain.store_memory("the user's favourite colour is BLUE", user_id=uid, importance=0.6)
    assert again.id == first.id
    assert again.importance == 0.6
    assert again.metadata["merged"] == 1
    reordered = await plain.store_memory("blue is the user's favourite colour", user_id=uid)
    assert reordered.id == first.id  # same word set: Jaccard 1.0
    assert [h.content for h in await plain.get_memory_history(first.id)] == [
        "The user's favourite colour is blue.",
        "the user's favourite colour is BLUE",
    ]
    assert len((await plain.retrieve_memories(user_id=uid)).items) == 1


async def test_near_duplicate_scope_user_agent_kind(plain: AsyncTenantStore) -> None:
    ada, bob = await _user(plain), await _user(plain)
    a = await plain.store_memory("prefers short answers", user_id=ada)
    assert (await plain.store_memory("prefers short answers", user_id=bob)).id != a.id
    assert (await plain.store_memory("prefers short answers", user_id=ada, agent_id="x")).id != a.id
    assert (await plain.store_memory("prefers short answers", user_id=ada, kind="preference")).id != a.id
    assert (await plain.store_memory("prefers long answers", user_id=ada)).id != a.id  # Jaccard 0.5
    assert (await plain.store_memory("prefers short answers", user_id=ada, dedup=False)).id != a.id
    expired = await plain.store_memory(
        "met Carol", user_id=ada, expires_at=datetime.now(UTC) - timedelta(seconds=1), dedup=False
    )
    assert (await plain.store_memory("met Carol", user_id=ada)).id != expired.id


async def test_merge_takes_higher_tier_union_of_sources(plain: AsyncTenantStore) -> None:
    _, messages = await _conversation(plain, ["hello", "bonjour"])
    m1, m2 = messages[0].id, messages[1].id
    first = await plain.store_memory("speaks French", tier="long_term", source_message_ids=[m1])
    merged = await plain.store_memory("Speaks French!", tier="working", source_message_ids=[m2, m1])
    assert merged.id == first.id
    assert merged.tier == MemoryTier.LONG_TERM
    assert merged.source_message_ids == [str(m1), str(m2)]


async def test_add_memory_segment(atenant: AsyncTenantStore) -> None:
    uid = await _user(atenant)
    _, messages = await _conversation(atenant, ["Rust?", "Rust!"])
    first = await atenant.add_memory_segment(
        "Talked about Rust.", source_message_ids=[m.id for m in messages], user_id=uid
    )
    # A segment of segments may name the segments it summarises (memories) as well as messages.
    ids = [first.id, messages[0].id]
    segment = await atenant.add_memory_segment(
        "Talked about Rust.", source_message_ids=ids, user_id=uid, compression_level=2
    )
    assert (segment.kind, segment.tier, segment.compression_level) == (MemoryKind.SUMMARY, MemoryTier.LONG_TERM, 2)
    assert segment.source_message_ids == [str(i) for i in ids]
    # Segments are never merged, even with identical text.
    assert first.id != segment.id
    with pytest.raises(InvalidInput):
        await atenant.add_memory_segment("x", source_message_ids=[], compression_level=0)


async def _conversation(t: AsyncTenantStore, turns: Sequence[str]) -> tuple[uuid.UUID, list[Message]]:
    uid = await _user(t)
    conv = await t.create_conversation(uid)
    roles = ["user", "assistant"]
    messages = await t.add_messages(conv.id, [NewMessage(role=roles[i % 2], content=c) for i, c in enumerate(turns)])
    return conv.id, messages


TURNS = [
    "Hi! I am planning a trip to Japan in April.",
    "Great, April is cherry blossom season in Kyoto.",
    "My budget is 3000 euros and I hate crowded places.",
    "Then consider Kanazawa and the Kiso valley instead of central Kyoto.",
    "I am vegetarian, so food matters.",
    "Shojin ryori, Buddhist temple cuisine, is fully vegetarian.",
    "What about trains?",
    "A 7-day Japan Rail Pass covers the Shinkansen.",
]


async def test_consolidate_is_idempotent_and_incremental(atenant: AsyncTenantStore) -> None:
    cid, messages = await _conversation(atenant, TURNS)
    segment = await atenant.consolidate_conversation(cid, keep_recent=2)
    assert segment is not None
    assert (segment.kind, segment.compression_level, segment.tier) == (MemoryKind.SUMMARY, 1, MemoryTier.LONG_TERM)
    assert segment.source_message_ids == [str(m.id) for m in messages[:6]]
    assert segment.metadata["conversation_id"] == str(cid)
    assert (segment.metadata["first_seq"], segment.metadata["last_seq"]) == (1, 6)
    assert segment.content
    conv = await atenant.get_conversation_or_raise(cid)
    assert segment.user_id == conv.user_id
    assert await atenant.consolidate_conversation(cid, keep_recent=2) is None  # nothing new
    more = await atenant.add_messages(
        cid, [NewMessage(role="user", content="Book the ryokan."), NewMessage(role="assistant", content="Done.")]
    )
    second = await atenant.consolidate_conversation(cid, keep_recent=2)
    assert second is not None
    assert second.source_message_ids == [str(m.id) for m in messages[6:]]
    assert await atenant.consolidate_conversation(cid, keep_recent=0, min_messages=3) is None  # only 2 left
    third = await atenant.consolidate_conversation(cid, keep_recent=0)
    assert third is not None and third.source_message_ids == [str(m.id) for m in more]
    segments = (await atenant.retrieve_memories(user_id=conv.user_id, kind="summary")).items
    assert len(segments) == 3
    with pytest.raises(ConversationNotFound):
        await atenant.consolidate_conversation(uuid.uuid4())


async def test_consolidate_with_llm_summarizer(atenant: AsyncTenantStore) -> None:
    cid, _ = await _conversation(atenant, TURNS)
    prompts: list[str] = []

    def complete(prompt: str) -> str:
        prompts.append(prompt)
        return "  User plans a vegetarian April trip to Japan on 3000 EUR.  "

    segment = await atenant.consolidate_conversation(cid, keep_recent=4, summarizer=LLMSummarizer(complete))
    assert segment is not None
    assert segment.content == "User plans a vegetarian April trip to Japan on 3000 EUR."
    assert segment.metadata["summarizer"] == "LLMSummarizer"
    assert "user: Hi! I am planning a trip to Japan in April." in prompts[0]
    assert "Shinkansen" not in prompts[0]  # kept recent, not summarised

    def broken(prompt: str) -> str:
        raise TimeoutError("model timed out")

    cid2, _ = await _conversation(atenant, TURNS)
    with pytest.raises(SummarizationError, match="timed out"):
        await atenant.consolidate_conversation(cid2, keep_recent=2, summarizer=LLMSummarizer(broken))
    assert await atenant.consolidate_conversation(cid2, keep_recent=2) is not None  # nothing was stored


async def _age(t: AsyncTenantStore, cid: uuid.UUID, *, days: float, status: ConversationStatus) -> None:
    """Pretend the conversation was last active ``days`` ago (through the repository: no public setter)."""
    async with t._tx(write=True) as uow:
        await uow.conversations.update(
            cid, {"last_activity_at": datetime.now(UTC) - timedelta(days=days), "status": status.value}
        )


async def test_maintenance_purges_archives_and_deletes(astore: AsyncMnemoStore, atenant: AsyncTenantStore) -> None:
    await astore.update_tenant_config(
        atenant.tenant_id, config={"retention": {"archive_after_days": 30, "delete_archived_after_days": 90}}
    )
    uid = await _user(atenant)
    gone = await atenant.store_memory("stale", user_id=uid, expires_at=datetime.now(UTC) - timedelta(hours=1))
    kept = await atenant.store_memory("fresh", user_id=uid)
    convs = {}
    for name, days, status in [
        ("recent", 1, ConversationStatus.ACTIVE),
        ("idle", 40, ConversationStatus.ACTIVE),
        ("ancient", 100, ConversationStatus.ACTIVE),
        ("archived_recent", 50, ConversationStatus.ARCHIVED),
        ("archived_old", 120, ConversationStatus.ARCHIVED),
    ]:
        conv = await atenant.create_conversation(uid, title=name)
        await atenant.add_message(conv.id, role="user", content=f"hello from {name}")
        await _age(atenant, conv.id, days=days, status=status)
        convs[name] = conv.id
    before = await astore.get_tenant_usage(atenant.tenant_id)

    dry = await astore.run_maintenance(atenant.tenant_id, dry_run=True)
    assert dry.dry_run
    assert (dry.expired_memories, dry.archived_conversations, dry.deleted_conversations) == (1, 2, 2)
    assert await atenant.get_memory(gone.id) is not None  # nothing changed

    report = await astore.run_maintenance(atenant.tenant_id)
    assert (report.expired_memories, report.archived_conversations, report.deleted_conversations) == (1, 2, 2)
    assert await atenant.get_memory(gone.id) is None
    assert await atenant.get_memory(kept.id) is not None
    status = {n: (await atenant.get_conversation(c)) for n, c in convs.items()}
    assert status["recent"] is not None and status["recent"].status == ConversationStatus.ACTIVE
    assert status["idle"] is not None and status["idle"].status == ConversationStatus.ARCHIVED
    assert status["archived_recent"] is not None
    assert status["ancient"] is None and status["archived_old"] is None
    after = await astore.get_tenant_usage(atenant.tenant_id)
    assert (before.conversations - after.conversations, before.messages - after.messages) == (2, 2)
    with pytest.raises(ConversationNotFound):
        await atenant.get_conversation_history(convs["ancient"])
    again = await astore.run_maintenance(atenant.tenant_id)
    assert (again.expired_memories, again.archived_conversations, again.deleted_conversations) == (0, 0, 0)


async def test_maintenance_without_retention_config_only_purges(
    astore: AsyncMnemoStore, atenant: AsyncTenantStore
) -> None:
    uid = await _user(atenant)
    conv = await atenant.create_conversation(uid)
    await _age(atenant, conv.id, days=10_000, status=ConversationStatus.ARCHIVED)
    await atenant.store_memory("x", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    result = await atenant.run_maintenance()
    assert (result.expired_memories, result.archived_conversations, result.deleted_conversations) == (1, 0, 0)
    assert await atenant.get_conversation(conv.id) is not None


async def test_maintenance_reports_bad_config(astore: AsyncMnemoStore, atenant: AsyncTenantStore) -> None:
    await astore.update_tenant_config(atenant.tenant_id, config={"retention": {"archive_after_days": -1}})
    with pytest.raises(ConfigurationError, match="archive_after_days"):
        await atenant.run_maintenance()
    report = await astore.run_maintenance()
    mine = [t for t in report.tenants if t.tenant_id == atenant.tenant_id]
    assert mine and mine[0].error is not None and "archive_after_days" in mine[0].error
