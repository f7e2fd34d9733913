"""``Memory``: the three-line memory API, keyed by the caller's own user ids, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnemostore import (
    AsyncMemory,
    Embedder,
    InvalidInput,
    Memory,
    MemoryNotFound,
    MnemoStore,
    SchemaOutOfDate,
    SearchMode,
    TenantNotFound,
)
from mnemostore.ops import migrate


@pytest.fixture
def memory(database_url: str) -> Iterator[Memory]:
    m = Memory(database_url, tenant=f"facade-{uuid.uuid4().hex[:8]}")
    yield m
    m.close()


def test_three_lines_in_a_fresh_folder_create_the_database_and_the_default_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNEMOSTORE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    m = Memory()
    try:
        [fact] = m.add("I'm vegetarian", user_id="alice")
        hits = m.search("vegetarian", user_id="alice")
        assert [h.id for h in hits] == [fact.id]
        assert m.store.get_tenant_by_name("default") is not None
        assert m.tenant.get_user_by_external_id("alice") is not None
    finally:
        m.close()
    assert (tmp_path / "mnemostore.db").exists()
    again = Memory()  # the second program finds the database and the tenant as they are
    try:
        assert [r.content for r in again.get_all(user_id="alice").items] == ["I'm vegetarian"]
    finally:
        again.close()


def test_add_search_get_update_history_delete(memory: Memory) -> None:
    [fact] = memory.add("Alice is allergic to peanuts", user_id="alice", metadata={"source": "chat"})
    assert fact.metadata == {"source": "chat"}
    assert memory.get(fact.id) == fact
    hits = memory.search("peanuts", user_id="alice", mode=SearchMode.FULLTEXT)
    assert [h.id for h in hits] == [fact.id] and hits.mode == SearchMode.FULLTEXT
    updated = memory.update(fact.id, "Alice is allergic to peanuts and cashews")
    assert updated.content.endswith("cashews")
    assert [v.content for v in memory.history(fact.id)] == ["Alice is allergic to peanuts"]
    memory.delete(fact.id)
    assert memory.get(fact.id) is None
    with pytest.raises(MemoryNotFound):
        memory.delete(fact.id)


def test_users_are_the_callers_strings_and_never_see_each_other(memory: Memory) -> None:
    memory.add("Alice lives in Lisbon", user_id="alice")
    memory.add("Bob lives in Porto", user_id="bob@example.com")
    assert [r.content for r in memory.get_all(user_id="alice").items] == ["Alice lives in Lisbon"]
    assert [h.content for h in memory.search("lives", user_id="bob@example.com", mode="fulltext")] == [
        "Bob lives in Porto"
    ]
    # A user never written for has nothing, and reading does not create them.
    assert memory.get_all(user_id="carol").items == []
    assert list(memory.search("lives", user_id="carol")) == []
    assert memory.tenant.get_user_by_external_id("carol") is None
    with pytest.raises(InvalidInput, match="user_id"):
        memory.add("x", user_id="")


def test_a_chat_is_stored_as_a_conversation_and_what_the_user_said_as_memories(memory: Memory) -> None:
    chat = [
        {"role": "user", "content": "I just moved to Berlin"},
        {"role": "assistant", "content": "Welcome! How can I help?"},
        {"role": "user", "content": "I work night shifts"},
    ]
    stored = memory.add(chat, user_id="dana")
    assert [m.content for m in stored] == ["I just moved to Berlin", "I work night shifts"]
    conversation_id = stored[0].metadata["conversation_id"]
    history = memory.tenant.get_conversation_history(conversation_id, limit=10)
    assert [(m.role.value, m.content) for m in history.messages] == [(c["role"], c["content"]) for c in chat]
    assert stored[0].source_message_ids == [str(history.messages[0].id)]
    # More of the same chat: appended to that conversation; roles= picks which messages become memories.
    more = memory.add(
        [{"role": "assistant", "content": "Noted: night shifts."}],
        user_id="dana",
        conversation_id=conversation_id,
        roles=("user", "assistant"),
    )
    assert [m.content for m in more] == ["Noted: night shifts."]
    assert len(memory.tenant.get_conversation_history(conversation_id, limit=10).messages) == 4
    with pytest.raises(InvalidInput, match="list of chat messages"):
        memory.add([], user_id="dana")


def test_the_same_fact_twice_is_one_memory_with_a_version(memory: Memory) -> None:
    [first] = memory.add("Erin's favourite colour is green", user_id="erin")
    [second] = memory.add("erin's favourite colour is green!", user_id="erin")
    assert second.id == first.id
    assert len(memory.get_all(user_id="erin").items) == 1
    assert len(memory.history(first.id)) == 1


def test_delete_all_forgets_one_users_memories_only(memory: Memory) -> None:
    memory.add("Frank plays chess", user_id="frank", agent_id="coach")
    memory.add("Frank runs marathons", user_id="frank")
    memory.add("Gina paints", user_id="gina")
    assert memory.delete_all(user_id="frank", agent_id="coach") == 1
    assert [r.content for r in memory.get_all(user_id="frank").items] == ["Frank runs marathons"]
    assert memory.delete_all(user_id="frank") == 1
    assert memory.delete_all(user_id="nobody") == 0
    assert [r.content for r in memory.get_all(user_id="gina").items] == ["Gina paints"]
    assert memory.tenant.get_user_by_external_id("frank") is not None  # the user stays


def test_get_all_pages(memory: Memory) -> None:
    for i in range(5):
        memory.add(f"fact number {i} about hal", user_id="hal", importance=i / 10, metadata={"i": i})
    first = memory.get_all(user_id="hal", limit=3)
    rest = memory.get_all(user_id="hal", limit=3, cursor=first.next_cursor)
    assert [r.metadata["i"] for r in first.items + rest.items] == [4, 3, 2, 1, 0]
    assert rest.next_cursor is None


def test_tenants_by_name_and_by_id(database_url: str) -> None:
    name = f"named-{uuid.uuid4().hex[:8]}"
    with Memory(database_url, tenant=name) as m:
        m.add("Ivy likes tea", user_id="ivy")
        tenant_id = m.tenant.tenant_id
    with Memory(database_url, tenant=tenant_id) as by_id:
        assert [r.content for r in by_id.get_all(user_id="ivy").items] == ["Ivy likes tea"]
    with pytest.raises(TenantNotFound), Memory(database_url, tenant=uuid.uuid4()) as missing:
        missing.get_all(user_id="ivy")


def test_an_open_store_is_used_as_is(database_url: str) -> None:
    store = MnemoStore(database_url)
    try:
        m = Memory(store=store, tenant=f"shared-{uuid.uuid4().hex[:8]}")
        m.add("Jo sings", user_id="jo")
        m.close()  # not its store: it stays open
        assert store.get_tenant_by_name(m.tenant.resolve().name) is not None
        with pytest.raises(InvalidInput, match="not both"):
            Memory(database_url, store=store)
    finally:
        store.close()


def test_a_database_behind_the_code_is_never_upgraded_by_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(MnemoStore(url).settings, "0001")
    with Memory(url) as m, pytest.raises(SchemaOutOfDate):
        m.add("x", user_id="kim")
    assert sqlite3.connect(tmp_path / "old.db").execute("SELECT count(*) FROM tenants").fetchone() == (0,)


def test_found_by_meaning_right_after_add(vector_url: str, minilm: Embedder) -> None:
    with Memory(vector_url, tenant=f"meaning-{uuid.uuid4().hex[:8]}", embedder=minilm) as m:
        m.add("I'm vegetarian", user_id="alice")
        m.add("I have a cat called Miso", user_id="alice")
        hits = m.search("what can alice eat?", user_id="alice", limit=1)
        assert hits.mode == SearchMode.HYBRID and hits.pending == 0
        assert [h.content for h in hits] == ["I'm vegetarian"]


async def test_async_memory(database_url: str) -> None:
    async with AsyncMemory(database_url, tenant=f"async-{uuid.uuid4().hex[:8]}") as m:
        [fact] = await m.add("Lee rides a bike", user_id="lee")
        assert [h.id for h in await m.search("bike", user_id="lee", mode="fulltext")] == [fact.id]
        [listed] = (await m.get_all(user_id="lee")).items
        # The search recalled it once (counted after the read, so get_all shows that one, not its own).
        assert listed == dataclasses.replace(fact, recall_count=1, last_recalled_at=listed.last_recalled_at)
        assert await m.delete_all(user_id="lee") == 1
