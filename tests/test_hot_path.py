"""The append and history hot path behaves the same on both backends.

PostgreSQL runs it server-side in one call (migration 0007), SQLite statement by statement from Python: these
tests hold both to the same answers on what the routine does by itself (idempotency keys, counters, the outbox,
quotas, metrics, missing conversations).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC

import pytest

from mnemostore import (
    ConversationNotFound,
    MnemoStore,
    NewMessage,
    QuotaExceeded,
    Quotas,
    TenantStore,
)


def _conversation(t: TenantStore) -> uuid.UUID:
    return t.create_conversation(t.create_user().id).id


def test_a_batch_mixing_a_retried_key_and_new_messages_writes_only_the_new(
    store: MnemoStore, tenant: TenantStore
) -> None:
    cid = _conversation(tenant)
    first = tenant.add_message(cid, role="user", content="hello", idempotency_key="k1", metadata={"n": 1})

    again = tenant.add_messages(
        cid,
        [
            NewMessage(role="user", content="hello", idempotency_key="k1", metadata={"n": 1}),
            NewMessage(role="assistant", content="hi", prompt_tokens=3, completion_tokens=4, idempotency_key="k2"),
            NewMessage(role="user", content="no key"),
        ],
    )

    assert again[0] == first  # the stored original, not a copy
    assert [(m.seq, m.content, m.idempotency_key) for m in again[1:]] == [(2, "hi", "k2"), (3, "no key", None)]
    assert [m.content for m in tenant.get_conversation_history(cid).messages] == ["hello", "hi", "no key"]
    conversation = tenant.get_conversation(cid)
    assert conversation is not None
    assert (conversation.message_count, conversation.last_seq, conversation.total_tokens) == (3, 3, 7)
    assert store.get_tenant_usage(tenant.tenant_id).messages == 3


def test_a_batch_of_retries_only_writes_nothing(store: MnemoStore, tenant: TenantStore) -> None:
    cid = _conversation(tenant)
    stored = tenant.add_messages(
        cid, [NewMessage(role="user", content=f"m{i}", idempotency_key=f"k{i}") for i in range(3)]
    )
    retried = tenant.add_messages(
        cid, [NewMessage(role="user", content=f"m{i}", idempotency_key=f"k{i}") for i in (2, 0)]
    )
    assert retried == [stored[2], stored[0]]
    assert tenant.count_messages(cid) == 3 and store.get_tenant_usage(tenant.tenant_id).messages == 3


def test_appends_queue_one_index_job_per_new_message(tenant: TenantStore) -> None:
    cid = _conversation(tenant)
    tenant.add_messages(cid, [NewMessage(role="user", content=f"fact {i}") for i in range(4)])
    tenant.add_message(cid, role="user", content="fact 0 again", idempotency_key="same")
    tenant.add_message(cid, role="user", content="fact 0 again", idempotency_key="same")
    assert tenant.indexing_status().pending == 5


def test_quota_refusal_names_the_quota_and_writes_nothing(store: MnemoStore) -> None:
    t = store.tenant(store.create_tenant(f"quota-{uuid.uuid4().hex[:8]}", quotas=Quotas(max_messages=2)).id)
    cid = _conversation(t)
    t.add_message(cid, role="user", content="one")
    with pytest.raises(QuotaExceeded, match="max_messages"):
        t.add_messages(cid, [NewMessage(role="user", content="two"), NewMessage(role="user", content="three")])
    assert [m.content for m in t.get_conversation_history(cid).messages] == ["one"]
    conversation = t.get_conversation(cid)
    assert conversation is not None and (conversation.message_count, conversation.last_seq) == (1, 1)
    assert store.get_tenant_usage(t.tenant_id).messages == 1
    assert t.add_message(cid, role="user", content="two").seq == 2  # no number was burnt


def test_storage_quota_refusal_is_named_too(store: MnemoStore) -> None:
    t = store.tenant(store.create_tenant(f"bytes-{uuid.uuid4().hex[:8]}", quotas=Quotas(max_storage_bytes=10)).id)
    cid = _conversation(t)
    with pytest.raises(QuotaExceeded, match="max_storage_bytes"):
        t.add_message(cid, role="user", content="more than ten bytes")
    assert t.count_messages(cid) == 0


def test_a_conversation_of_another_tenant_is_not_found_for_append_or_history(store: MnemoStore) -> None:
    owner = store.tenant(store.create_tenant(f"owner-{uuid.uuid4().hex[:8]}").id)
    other = store.tenant(store.create_tenant(f"other-{uuid.uuid4().hex[:8]}").id)
    cid = _conversation(owner)
    owner.add_message(cid, role="user", content="private")
    with pytest.raises(ConversationNotFound):
        other.add_message(cid, role="user", content="intruding")
    with pytest.raises(ConversationNotFound):
        other.add_message(cid, role="user", content="intruding", idempotency_key="k")
    with pytest.raises(ConversationNotFound):
        other.get_conversation_history(cid)
    with pytest.raises(ConversationNotFound):
        other.get_conversation_history(uuid.uuid4(), limit=5, before=owner.get_conversation_history(cid).after)
    assert [m.content for m in owner.get_conversation_history(cid).messages] == ["private"]


def test_the_history_page_is_what_the_repositories_read(tenant: TenantStore) -> None:
    """The hot path decodes rows its own way (leaner than SQLAlchemy's processors): every field must come back
    as the repositories' reading of the same row gives it."""
    cid = _conversation(tenant)
    sent = [
        NewMessage(role="system", content="be brief"),
        NewMessage(role="user", content="héllo ✓", prompt_tokens=3, metadata={"n": 1, "nested": {"a": [1, 2.5, None]}}),
        NewMessage(role="assistant", content="", model="m-1", completion_tokens=7, metadata={}, idempotency_key="k"),
    ]
    tenant.add_messages(cid, sent)
    page = tenant.get_conversation_history(cid).messages
    stored = [tenant.get_message(message.id) for message in page]
    assert page == stored
    assert [m.metadata for m in page] == [{}, {"n": 1, "nested": {"a": [1, 2.5, None]}}, {}]
    assert all(m.created_at.tzinfo is UTC for m in page)


def test_an_empty_conversation_reads_as_an_empty_page(tenant: TenantStore) -> None:
    cid = _conversation(tenant)
    page = tenant.get_conversation_history(cid)
    assert (page.messages, page.before, page.after) == ([], None, None)


@pytest.fixture
def observed(database_url: str) -> Iterator[tuple[MnemoStore, list[str]]]:
    """A store of its own (the observer stays on its engine) recording the kind of every statement."""
    kinds: list[str] = []
    with MnemoStore(database_url, cache_enabled=False) as store:
        store.observe_queries(lambda kind, seconds: kinds.append(kind) if seconds >= 0 else None)
        yield store, kinds


def test_query_observers_see_the_hot_path(observed: tuple[MnemoStore, list[str]]) -> None:
    store, kinds = observed
    t = store.tenant(store.create_tenant(f"observed-{uuid.uuid4().hex[:8]}").id)
    cid = _conversation(t)
    kinds.clear()
    t.add_message(cid, role="user", content="counted")
    assert "insert" in kinds
    kinds.clear()
    t.get_conversation_history(cid)
    assert "select" in kinds
