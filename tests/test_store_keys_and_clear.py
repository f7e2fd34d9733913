"""Store features the framework integrations stand on, on SQLite and PostgreSQL: knowledge chunks read and deleted
by their external ids, search scoped to one knowledge source (hits carry the chunk's external id), clearing a
conversation's messages, and an embedder's own query embedding.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from mnemostore import (
    AsyncTenantStore,
    ConfigurationError,
    ConflictError,
    ConversationNotFound,
    InvalidInput,
    MnemoStore,
    TenantStore,
)
from mnemostore.search import HashingEmbedder


def _usage(tenant: TenantStore) -> tuple[int, int, int]:
    usage = tenant.store.get_tenant_usage(tenant.tenant_id)
    return usage.messages, usage.tokens, usage.storage_bytes


# -- knowledge by external id ------------------------------------------------------------------------------------


def test_get_knowledge_chunks_answers_in_the_order_asked_and_leaves_out_the_missing(tenant: TenantStore) -> None:
    tenant.upsert_knowledge_chunks("docs", [{"external_id": k, "content": f"text {k}"} for k in ("a", "b", "c")])
    tenant.upsert_knowledge("other", "b", "another source's b")
    found = tenant.get_knowledge_chunks("docs", ["c", "nope", "a", "c"])
    assert [(c.external_id, c.content, c.source) for c in found] == [("c", "text c", "docs"), ("a", "text a", "docs")]
    assert tenant.get_knowledge_chunks("docs", []) == []
    assert tenant.get_knowledge_chunks("missing-source", ["a"]) == []


def test_external_ids_must_be_a_list_of_strings(tenant: TenantStore) -> None:
    with pytest.raises(InvalidInput, match="list of strings"):
        tenant.get_knowledge_chunks("docs", "abc")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="list of strings"):
        tenant.delete_knowledge_chunks("docs", "abc")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        tenant.get_knowledge_chunks("docs", ["a", 1])  # type: ignore[list-item]


def test_delete_knowledge_chunks_deletes_only_those_of_the_source_and_releases_their_bytes(tenant: TenantStore) -> None:
    tenant.upsert_knowledge_chunks("docs", [{"external_id": k, "content": "x" * 10} for k in ("a", "b", "c")])
    tenant.upsert_knowledge("other", "a", "y" * 7)
    assert _usage(tenant)[2] == 37
    assert tenant.delete_knowledge_chunks("docs", ["a", "c", "missing", "a"]) == 2
    assert [c.external_id for c in tenant.list_knowledge("docs").items] == ["b"]
    assert [c.external_id for c in tenant.list_knowledge("other").items] == ["a"]
    assert _usage(tenant)[2] == 17
    assert tenant.delete_knowledge_chunks("docs", ["a"]) == 0
    assert tenant.delete_knowledge_chunks("docs", []) == 0


def test_many_external_ids_in_one_call(tenant: TenantStore) -> None:
    keys = [f"k{i:04d}" for i in range(1200)]  # more than one IN (...) list
    tenant.upsert_knowledge_chunks("docs", [{"external_id": k, "content": k} for k in keys])
    assert [c.external_id for c in tenant.get_knowledge_chunks("docs", keys[::-1])] == keys[::-1]
    assert tenant.delete_knowledge_chunks("docs", keys[:1100]) == 1100
    assert [c.external_id for c in tenant.list_knowledge("docs", limit=1000).items] == keys[1100:]


# -- search scoped to a source -----------------------------------------------------------------------------------


def test_fulltext_search_by_source_finds_that_source_only_and_names_the_external_id(tenant: TenantStore) -> None:
    user = tenant.create_user()
    conversation = tenant.create_conversation(user.id)
    tenant.add_message(conversation.id, role="user", content="the zebra handbook")
    tenant.upsert_knowledge("handbook", "zebra#1", "zebra crossings are painted white")
    tenant.upsert_knowledge("wiki", "zebra#1", "the zebra is a striped animal")
    everything = tenant.search("zebra", mode="fulltext")
    assert sorted(h.kind.value for h in everything) == ["knowledge", "knowledge", "messages"]
    hits = tenant.search("zebra", mode="fulltext", source="handbook")
    assert [(h.kind.value, h.source, h.external_id) for h in hits] == [("knowledge", "handbook", "zebra#1")]
    assert [h.external_id for h in everything if h.kind.value == "messages"] == [None]
    assert tenant.search("zebra", mode="fulltext", source="nothing-here") == []


@pytest.fixture(scope="module")
def hashing_store(vector_url: str) -> Iterator[MnemoStore]:
    store = MnemoStore(vector_url, embedder=HashingEmbedder(64))
    yield store
    store.close()


def test_semantic_search_by_source_on_the_vector_index(hashing_store: MnemoStore) -> None:
    created = hashing_store.create_tenant(f"keys-{uuid.uuid4().hex[:12]}")
    tenant = hashing_store.tenant(created.id)
    tenant.upsert_knowledge_chunks("a", [{"external_id": f"a{i}", "content": f"alpha beta {i}"} for i in range(5)])
    tenant.upsert_knowledge_chunks("b", [{"external_id": f"b{i}", "content": f"alpha beta {i}"} for i in range(5)])
    tenant.wait_for_indexing()
    hits = tenant.search("alpha beta", mode="semantic", source="b", limit=10)
    assert sorted(h.external_id or "" for h in hits) == [f"b{i}" for i in range(5)]
    assert {h.source for h in hits} == {"b"}
    hits = tenant.search("alpha beta", mode="semantic", source="a", metadata={"missing": 1}, limit=10)
    assert hits == []


# -- clearing a conversation -------------------------------------------------------------------------------------


def test_delete_messages_empties_the_conversation_and_keeps_it(tenant: TenantStore) -> None:
    user = tenant.create_user()
    conversation = tenant.create_conversation(user.id, title="kept", external_id="session-1")
    other = tenant.create_conversation(user.id)
    tenant.add_messages(
        conversation.id,
        [
            {"role": "user", "content": "hello", "prompt_tokens": 3},
            {"role": "assistant", "content": "hi there", "completion_tokens": 5},
        ],
    )
    tenant.add_message(other.id, role="user", content="elsewhere")
    assert tenant.get_conversation_history(conversation.id).messages  # the recent-context window is filled
    assert _usage(tenant) == (3, 8, 22)

    assert tenant.delete_messages(conversation.id) == 2

    kept = tenant.get_conversation_or_raise(conversation.id)
    assert (kept.title, kept.external_id, kept.message_count, kept.total_tokens, kept.content_bytes) == (
        "kept",
        "session-1",
        0,
        0,
        0,
    )
    assert tenant.get_conversation_history(conversation.id).messages == []
    assert [m.content for m in tenant.get_conversation_history(other.id).messages] == ["elsewhere"]
    assert _usage(tenant) == (1, 0, 9)
    again = tenant.add_message(conversation.id, role="user", content="again")
    assert again.seq == 3  # sequence numbers are not reused
    assert [m.content for m in tenant.get_conversation_history(conversation.id).messages] == ["again"]
    assert tenant.delete_messages(other.id) == 1
    assert tenant.delete_messages(other.id) == 0


def test_delete_messages_of_an_unknown_conversation(tenant: TenantStore) -> None:
    with pytest.raises(ConversationNotFound):
        tenant.delete_messages(uuid.uuid4())


# -- an embedder's query embedding -------------------------------------------------------------------------------


class QueryPrefixEmbedder(HashingEmbedder):
    """Embeds a query as the words after "query:" would be; documents as they are (like e5-style models)."""

    def __init__(self) -> None:
        super().__init__(64)
        self.name = "query-prefix-test"
        self.queries: list[str] = []

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self.embed([text.removeprefix("query:")])[0]


def test_search_embeds_the_query_with_embed_query(vector_url: str) -> None:
    embedder = QueryPrefixEmbedder()
    assert HashingEmbedder(64).embed_query("some text") == HashingEmbedder(64).embed(["some text"])[0]
    with MnemoStore(vector_url, embedder=embedder) as store:
        created = store.create_tenant(f"query-{uuid.uuid4().hex[:12]}")
        tenant = store.tenant(created.id)
        tenant.upsert_knowledge("docs", "1", "giraffe")
        tenant.upsert_knowledge("docs", "2", "elephant")
        tenant.wait_for_indexing()
        hits = tenant.search("query:elephant", mode="semantic", kinds=["knowledge"], limit=1)
        assert embedder.queries == ["query:elephant"]
        assert [h.external_id for h in hits] == ["2"]
        assert hits[0].score == pytest.approx(1.0)


# -- a conversation created by external id while it is appended to -----------------------------------------------


async def test_creating_a_taken_external_id_while_the_conversation_is_appended_to(atenant: AsyncTenantStore) -> None:
    """The insert that finds the external id taken waits for the appender's update of that row; it must not hold
    the tenant's usage row meanwhile, which the appender charges next (PostgreSQL reported a deadlock)."""
    user = await atenant.create_user()
    conversation = await atenant.create_conversation(user.id, external_id="busy")
    for round_ in range(5):
        outcomes = await asyncio.gather(
            *(atenant.add_message(conversation.id, role="user", content=f"{round_}-{i}") for i in range(2)),
            *(atenant.create_conversation(user.id, external_id="busy") for _ in range(2)),
            return_exceptions=True,
        )
        assert all(not isinstance(o, Exception) for o in outcomes[:2]), outcomes
        assert all(isinstance(o, ConflictError) for o in outcomes[2:]), outcomes
    assert await atenant.count_messages(conversation.id) == 10


def test_the_embedder_argument_takes_an_embedder_object(database_url: str) -> None:
    with pytest.raises(ConfigurationError, match="Embedder object"):
        MnemoStore(database_url, embedder="none")  # type: ignore[arg-type]  # a setting's value, not an embedder
