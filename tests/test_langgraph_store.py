"""LangGraph's store on mnemostore (``AsyncMnemostoreStore``, ``MnemostoreStore``) over the tenant's graph items, on
SQLite and PostgreSQL: namespaced items, filters, namespaces, search ranked through mnemostore's index, time to
live on an injected clock, and a graph that keeps long-term memory across threads.
"""

from __future__ import annotations

import operator
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from mnemostore import AsyncMnemoStore, AsyncTenantStore, InvalidInput, ItemKind, TenantStore
from mnemostore.integrations.langgraph import AsyncMnemostoreSaver, AsyncMnemostoreStore, MnemostoreStore
from mnemostore.search import Embedder


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def test_put_get_update_delete(atenant: AsyncTenantStore) -> None:
    store = AsyncMnemostoreStore(atenant)
    await store.aput(("users", "alice"), "prefs", {"drink": "tea"})
    first = await store.aget(("users", "alice"), "prefs")
    assert first is not None and first.value == {"drink": "tea"} and first.namespace == ("users", "alice")
    await store.aput(("users", "alice"), "prefs", {"drink": "coffee"})
    second = await store.aget(("users", "alice"), "prefs")
    assert second is not None and second.value == {"drink": "coffee"}
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    assert await store.aget(("users", "bob"), "prefs") is None
    await store.adelete(("users", "alice"), "prefs")
    assert await store.aget(("users", "alice"), "prefs") is None
    with pytest.raises(InvalidInput, match=r"contains a '\.'"):
        await atenant.put_graph_item(("a.b",), "k", {})


async def test_search_filters_paging_and_namespaces(atenant: AsyncTenantStore) -> None:
    store = AsyncMnemostoreStore(atenant)
    for user, key, value in [
        ("alice", "a1", {"kind": "fact", "score": 3, "tags": ["x"]}),
        ("alice", "a2", {"kind": "fact", "score": 7, "tags": ["y"]}),
        ("alice", "a3", {"kind": "todo", "score": 5, "done": False}),
        ("bob", "b1", {"kind": "fact", "score": 9, "nested": {"level": 2}}),
    ]:
        await store.aput(("users", user, "notes"), key, value)
    await store.aput(("teams", "core"), "t1", {"kind": "fact"})

    async def keys(prefix: tuple[str, ...], **kwargs: Any) -> list[str]:
        return sorted(item.key for item in await store.asearch(prefix, **kwargs))

    assert await keys(("users",)) == ["a1", "a2", "a3", "b1"]
    assert await keys(("users", "alice")) == ["a1", "a2", "a3"]
    assert await keys(("user",)) == []  # a prefix is whole labels
    assert await keys(("users",), filter={"kind": "fact"}) == ["a1", "a2", "b1"]
    assert await keys(("users",), filter={"kind": "fact", "score": {"$gt": 5}}) == ["a2", "b1"]
    assert await keys(("users",), filter={"score": {"$gte": 5, "$lt": 9}}) == ["a2", "a3"]
    assert await keys(("users",), filter={"kind": {"$ne": "fact"}}) == ["a3"]
    assert await keys(("users",), filter={"done": False}) == ["a3"]
    assert await keys(("users",), filter={"nested": {"level": 2}}) == ["b1"]
    assert await keys(("users",), filter={"tags": ["y"]}) == ["a2"]
    assert await keys((), filter={"kind": "fact"}) == ["a1", "a2", "b1", "t1"]
    newest_first = [item.key for item in await store.asearch(("users",), limit=2)]
    assert newest_first == ["b1", "a3"]
    assert [item.key for item in await store.asearch(("users",), limit=2, offset=2)] == ["a2", "a1"]

    assert await store.alist_namespaces() == [("teams", "core"), ("users", "alice", "notes"), ("users", "bob", "notes")]
    assert await store.alist_namespaces(prefix=("users",), max_depth=2) == [("users", "alice"), ("users", "bob")]
    assert await store.alist_namespaces(prefix=("users", "*", "notes")) == [
        ("users", "alice", "notes"),
        ("users", "bob", "notes"),
    ]
    assert await store.alist_namespaces(suffix=("core",)) == [("teams", "core")]
    assert await store.alist_namespaces(max_depth=1, limit=1, offset=1) == [("users",)]


async def test_query_ranks_through_the_search_index(atenant: AsyncTenantStore, backend: str) -> None:
    store = AsyncMnemostoreStore(atenant, index={"fields": ["text"]})
    await store.aput(("memories", "alice"), "m1", {"text": "Alice drinks green tea every morning", "n": 1})
    await store.aput(("memories", "alice"), "m2", {"text": "Alice plays chess on Sundays", "n": 2})
    await store.aput(("memories", "bob"), "m3", {"text": "Bob drinks green tea too", "n": 3})
    await store.aput(("memories", "alice"), "m4", {"text": "green tea, not indexed"}, index=False)

    hits = await store.asearch(("memories", "alice"), query="green tea")
    assert [hit.key for hit in hits][:1] == ["m1"]
    assert "m3" not in {hit.key for hit in hits} and "m4" not in {hit.key for hit in hits}
    assert all(hit.score is not None for hit in hits)
    filtered = await store.asearch(("memories",), query="green tea", filter={"n": {"$gt": 1}})
    assert [hit.key for hit in filtered][:1] == ["m3"] and "m1" not in {hit.key for hit in filtered}
    if backend == "sqlite":  # the system PostgreSQL has no pgvector; the embedded index runs on SQLite
        semantic = await atenant.search("green tea", kinds=[ItemKind.GRAPH_ITEM], mode="semantic")
        assert semantic.mode.value == "semantic"
        assert "green tea" in next(iter(semantic)).content
    await store.aput(("memories", "bob"), "m3", {"text": "Bob drinks green tea too", "n": 3}, index=False)
    assert "m3" not in {hit.key for hit in await store.asearch(("memories",), query="green tea")}
    assert "m3" in {item.key for item in await store.asearch(("memories",))}  # listed, not searched by query
    await store.adelete(("memories", "alice"), "m1")
    assert "m1" not in {hit.key for hit in await store.asearch(("memories",), query="green tea")}


async def test_time_to_live_on_an_injected_clock(atenant: AsyncTenantStore) -> None:
    clock = Clock()
    store = AsyncMnemostoreStore(atenant, ttl={"default_ttl": 10, "refresh_on_read": True}, clock=clock)
    await store.aput(("s",), "short", {"v": 1}, ttl=1)
    await store.aput(("s",), "default", {"v": 2})
    await store.aput(("s",), "forever", {"v": 3}, ttl=None)

    clock.advance(seconds=50)
    assert await store.aget(("s",), "short") is not None  # read at 0:50: lives until 1:50
    clock.advance(seconds=50)
    assert await store.aget(("s",), "short", refresh_ttl=False) is not None  # 1:40, not refreshed
    clock.advance(seconds=20)
    assert await store.aget(("s",), "short") is None  # 2:00: expired
    assert sorted(i.key for i in await store.asearch(("s",))) == ["default", "forever"]
    clock.advance(minutes=11)  # 13:00; "default" was refreshed by the search at 2:00, until 12:00
    assert [i.key for i in await store.asearch(("s",))] == ["forever"]
    assert await store.alist_namespaces() == [("s",)]
    assert await store.asweep_ttl() == 2
    assert await store.asweep_ttl() == 0


class Chat(TypedDict, total=False):
    user: str
    message: str
    replies: Annotated[list[str], operator.add]


async def remember_or_recall(state: Chat, *, store: BaseStore) -> dict[str, Any]:
    namespace = ("memories", state["user"])
    text = state["message"]
    if text.startswith("remember: "):
        await store.aput(namespace, str(uuid.uuid4()), {"text": text.removeprefix("remember: ")})
        return {"replies": ["noted"]}
    found = await store.asearch(namespace, query=text, limit=1)
    return {"replies": [found[0].value["text"] if found else "I don't know"]}


async def test_a_graph_keeps_long_term_memory_across_threads(atenant: AsyncTenantStore) -> None:
    builder = StateGraph(Chat)
    builder.add_node("answer", remember_or_recall)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    store = AsyncMnemostoreStore(atenant, index={"fields": ["text"]})
    graph = builder.compile(checkpointer=AsyncMnemostoreSaver(atenant), store=store)

    await graph.ainvoke({"user": "ada", "message": "remember: my favourite tea is sencha"}, _thread("one"))
    await graph.ainvoke({"user": "ada", "message": "remember: my cat is called Turing"}, _thread("two"))
    reply = await graph.ainvoke({"user": "ada", "message": "which tea do I like?"}, _thread("three"))
    assert reply["replies"] == ["my favourite tea is sencha"]
    other = await graph.ainvoke({"user": "grace", "message": "which tea do I like?"}, _thread("four"))
    assert other["replies"] == ["I don't know"]


def _thread(name: str) -> Any:
    return {"configurable": {"thread_id": f"{name}-{uuid.uuid4().hex[:6]}"}}


def test_sync_store(tenant: TenantStore) -> None:
    store = MnemostoreStore(tenant)
    store.put(("docs",), "d1", {"title": "hello"})
    item = store.get(("docs",), "d1")
    assert item is not None and item.value == {"title": "hello"}
    assert [i.key for i in store.search(("docs",), filter={"title": "hello"})] == ["d1"]
    assert store.list_namespaces() == [("docs",)]
    store.delete(("docs",), "d1")
    assert store.get(("docs",), "d1") is None


async def test_semantic_search_with_the_real_model(vector_url: str, minilm: Embedder) -> None:
    """By meaning, with no word in common, on SQLite's embedded index and on PostgreSQL with pgvector."""
    async with AsyncMnemoStore(vector_url, embedder=minilm) as mnemo:
        tenant = mnemo.tenant((await mnemo.create_tenant(f"lg-{uuid.uuid4().hex[:8]}")).id)
        store = AsyncMnemostoreStore(tenant, index={"fields": ["text"]})
        await store.aput(("memories", "ada"), "pet", {"text": "Ada has a cat named Turing"})
        await store.aput(("memories", "ada"), "drink", {"text": "Ada prefers sencha in the morning"})
        await store.aput(("memories", "ada"), "work", {"text": "Ada writes compilers for a living"})
        hits = await store.asearch(("memories", "ada"), query="which beverage does she like?")
        assert [hit.key for hit in hits][:1] == ["drink"]
        semantic = await tenant.search("kitten", kinds=[ItemKind.GRAPH_ITEM], mode="semantic")
        assert semantic.mode.value == "semantic" and next(iter(semantic)).content == "Ada has a cat named Turing"
