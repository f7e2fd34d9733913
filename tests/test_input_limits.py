"""What the store refuses, the same on SQLite and PostgreSQL: integers beyond signed 64 bits (in arguments, in
stored JSON, in filters), JSON nested deeper than MAX_JSON_DEPTH, malformed emails, and references (checkpoint
``parent_id``, event ``checkpoint_id``, memory ``source_message_ids``) to ids the tenant does not have. Each is
refused with a specific exception, nothing written; over HTTP, with the matching status.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mnemostore import (
    AsyncMnemoStore,
    AsyncTenantStore,
    CheckpointNotFound,
    InvalidCursor,
    InvalidInput,
    InvalidMetadata,
    MessageNotFound,
    NewMessage,
    Quotas,
)
from mnemostore.config import MAX_INTEGER, MAX_JSON_DEPTH
from tests.fix_api import ApiTenant

BEYOND = [2**63, -(2**63), 2**64, 10**400]
"""Integers outside ±(2**63 - 1): the first made SQLite raise OverflowError (a 500) where PostgreSQL answered."""


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def _conversation(t: AsyncTenantStore) -> tuple[uuid.UUID, list[uuid.UUID]]:
    user = await t.create_user(display_name="Ada")
    conv = await t.create_conversation(user.id)
    added = await t.add_messages(
        conv.id, [NewMessage(role="user", content="hello there"), NewMessage(role="assistant", content="hi")]
    )
    return conv.id, [m.id for m in added]


# -- integers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("big", BEYOND, ids=["2^63", "-2^63", "2^64", "10^400"])
async def test_metadata_filter_beyond_64_bits_is_invalid_metadata(atenant: AsyncTenantStore, big: int) -> None:
    await _conversation(atenant)
    with pytest.raises(InvalidMetadata, match=r"metadata\.n is .*outside the integers the store keeps"):
        await atenant.search("hello", mode="fulltext", metadata={"n": big})
    with pytest.raises(InvalidMetadata, match="outside the integers"):
        await atenant.search_graph_items(("app",), filter={"n": big})


async def test_the_largest_integers_are_stored_and_matched_alike(atenant: AsyncTenantStore) -> None:
    conv, _ = await _conversation(atenant)
    for n in (MAX_INTEGER, -MAX_INTEGER):
        await atenant.add_messages(conv, [NewMessage(role="user", content=f"edge {n}", metadata={"n": n})])
        found = await atenant.search("edge", mode="fulltext", kinds=["messages"], metadata={"n": n})
        assert [r.content for r in found] == [f"edge {n}"]
        await atenant.put_graph_item(("app",), f"k{n}", {"n": n})
        assert [i.key for i in await atenant.search_graph_items(("app",), filter={"n": n})] == [f"k{n}"]


@pytest.mark.parametrize("big", BEYOND, ids=["2^63", "-2^63", "2^64", "10^400"])
async def test_stored_json_beyond_64_bits_is_refused(atenant: AsyncTenantStore, big: int) -> None:
    conv, _ = await _conversation(atenant)
    with pytest.raises(InvalidMetadata, match=r"metadata\.a\[1\] is .*-9223372036854775807 to 9223372036854775807"):
        await atenant.add_messages(conv, [NewMessage(role="user", content="x", metadata={"a": [1, big]})])
    refusals: list[Awaitable[Any]] = [
        atenant.store_memory("a fact", metadata={"n": big}),
        atenant.create_user(metadata={"n": big}),
        atenant.create_checkpoint(conv, iteration=1, state={"n": big}),
        atenant.record_tool_execution("tool", result=[big]),
        atenant.put_graph_item(("app",), "k", {"n": big}),
    ]
    for refused in refusals:
        with pytest.raises(InvalidMetadata, match="outside the integers"):
            await refused
    assert (await atenant.get_conversation_history(conv)).messages[-1].content == "hi"


@pytest.mark.parametrize("big", BEYOND, ids=["2^63", "-2^63", "2^64", "10^400"])
async def test_integer_arguments_beyond_their_range_are_invalid_input(
    astore: AsyncMnemoStore, atenant: AsyncTenantStore, big: int
) -> None:
    conv, _ = await _conversation(atenant)
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "keep": lambda: atenant.prune_checkpoints(conv, keep=big),
        "offset": lambda: atenant.search_graph_items(("app",), offset=big),
        "namespaces offset": lambda: atenant.list_graph_namespaces(offset=big),
        "graph keep": lambda: atenant.prune_graph_threads(["t"], keep=big),
        "importance": lambda: atenant.store_memory("a fact", importance=big),
        "metric": lambda: atenant.record_metric("latency", big),
        "duration_ms": lambda: atenant.record_tool_execution("tool", duration_ms=big),
        "min_score": lambda: atenant.search("hello", min_score=big),
        "ttl_minutes": lambda: atenant.put_graph_item(("app",), "k", {}, ttl_minutes=big),
        "cost": lambda: atenant.rate_limit(cost=big),
        "quota": lambda: astore.update_tenant_config(atenant.tenant_id, quotas=Quotas(max_messages=big)),
        "new quota": lambda: astore.create_tenant(f"q-{uuid.uuid4().hex[:8]}", quotas=Quotas(max_users=big)),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidInput) as refused:
            await call()
        assert "must be" in str(refused.value) or "more than 0" in str(refused.value), name


async def test_a_cursor_holding_a_huge_number_is_invalid_cursor(atenant: AsyncTenantStore) -> None:
    conv, _ = await _conversation(atenant)
    forged = base64.urlsafe_b64encode(json.dumps(["h", 2**63]).encode()).decode().rstrip("=")
    with pytest.raises(InvalidCursor):
        await atenant.get_conversation_history(conv, before=forged)
    forged_key = base64.urlsafe_b64encode(json.dumps(["m", 10**400, str(uuid.uuid4())]).encode()).decode()
    with pytest.raises(InvalidCursor):
        await atenant.retrieve_memories(cursor=forged_key.rstrip("="))


# -- JSON depth ----------------------------------------------------------------------------------------------------


async def test_json_nested_up_to_the_limit_is_kept_deeper_is_refused_naming_depth_and_limit(
    atenant: AsyncTenantStore,
) -> None:
    conv, _ = await _conversation(atenant)
    kept = await atenant.store_memory("deep", metadata=_nested(MAX_JSON_DEPTH), dedup=False)
    assert (await atenant.get_memory_or_raise(kept.id)).metadata == _nested(MAX_JSON_DEPTH)
    for depth in (MAX_JSON_DEPTH + 1, 1000):
        message = rf"metadata is nested {depth} levels deep, over the limit of {MAX_JSON_DEPTH} .*MAX_JSON_DEPTH"
        with pytest.raises(InvalidMetadata, match=message):
            await atenant.add_messages(conv, [NewMessage(role="user", content="x", metadata=_nested(depth))])
        with pytest.raises(InvalidMetadata, match=f"state is nested {depth} levels deep"):
            await atenant.create_checkpoint(conv, iteration=1, state=_nested(depth))
        with pytest.raises(InvalidMetadata, match=f"nested {depth} levels deep"):
            await atenant.search("hello", metadata=_nested(depth))


# -- emails --------------------------------------------------------------------------------------------------------


async def test_emails_are_checked_and_their_domain_lower_cased(atenant: AsyncTenantStore) -> None:
    user = await atenant.create_user(email="Ada.Lovelace+ai@Example.COM")
    assert user.email == "Ada.Lovelace+ai@example.com"
    found = await atenant.get_user_by_email("Ada.Lovelace+ai@EXAMPLE.com")
    assert found is not None and found.id == user.id
    for bad, why in (
        ("ada", "expected local-part@domain"),
        ("ada@localhost", "invalid domain"),
        ("ada@@example.com", "invalid local part"),
        ("a..b@example.com", "invalid local part"),
        ("ada @example.com", "white space"),
        ("ada@exa_mple.com", "invalid domain"),
        ("x" * 65 + "@example.com", "over the 64 allowed"),
    ):
        with pytest.raises(InvalidInput, match=why):
            await atenant.create_user(email=bad)
        with pytest.raises(InvalidInput, match=why):
            await atenant.update_user(user.id, email=bad)
        with pytest.raises(InvalidInput, match=why):
            await atenant.get_or_create_user_by_identity("discord", "ada-1", email=bad)
    assert (await atenant.get_user_or_raise(user.id)).email == "Ada.Lovelace+ai@example.com"


# -- references ----------------------------------------------------------------------------------------------------


async def test_references_to_ids_the_tenant_does_not_have_are_refused(
    astore: AsyncMnemoStore, atenant: AsyncTenantStore
) -> None:
    conv, messages = await _conversation(atenant)
    other = astore.tenant((await astore.create_tenant(f"other-{uuid.uuid4().hex[:8]}")).id)
    other_conv, other_messages = await _conversation(other)
    other_checkpoint = await other.create_checkpoint(other_conv, iteration=1, state={})
    for missing in (uuid.uuid4(), other_checkpoint.id):
        with pytest.raises(CheckpointNotFound, match=f"{missing} not found in this tenant: parent_id"):
            await atenant.create_checkpoint(conv, iteration=1, state={}, parent_id=missing)
        with pytest.raises(CheckpointNotFound, match=f"{missing} not found in this tenant: checkpoint_id"):
            await atenant.record_interaction_event("approval", conversation_id=conv, checkpoint_id=missing)
    assert (await atenant.list_checkpoints(conv)).items == []
    assert (await atenant.list_interaction_events()).items == []
    parent = await atenant.create_checkpoint(conv, iteration=1, state={})
    child = await atenant.create_checkpoint(conv, iteration=2, state={}, parent_id=parent.id)
    assert child.parent_id == parent.id
    event = await atenant.record_interaction_event("approval", conversation_id=conv, checkpoint_id=child.id)
    assert event.checkpoint_id == child.id

    ghost = uuid.uuid4()
    for sources in ([messages[0], ghost], [other_messages[0]]):
        with pytest.raises(MessageNotFound, match="not found in this tenant: source_message_ids"):
            await atenant.store_memory("speaks French", source_message_ids=sources)
    assert (await atenant.retrieve_memories()).items == []
    # A merge into a near-duplicate checks the new sources too, and leaves the memory as it was.
    first = await atenant.store_memory("speaks French", source_message_ids=[messages[0]])
    with pytest.raises(MessageNotFound, match=str(ghost)):
        await atenant.store_memory("Speaks French!", source_message_ids=[messages[1], ghost])
    assert (await atenant.get_memory_or_raise(first.id)).source_message_ids == [str(messages[0])]
    merged = await atenant.store_memory("Speaks French!", source_message_ids=[messages[1]])
    assert merged.id == first.id and merged.source_message_ids == [str(messages[0]), str(messages[1])]
    # A level-1 segment names messages only; a segment of segments may name memories too.
    with pytest.raises(MessageNotFound, match="must name its messages"):
        await atenant.add_memory_segment("summary", source_message_ids=[first.id])
    segment = await atenant.add_memory_segment("summary", source_message_ids=[first.id], compression_level=2)
    assert segment.source_message_ids == [str(first.id)]


# -- over HTTP -----------------------------------------------------------------------------------------------------


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    body: dict[str, Any] = response.json()
    return body


def test_http_refuses_huge_integers_deep_json_bad_emails_and_unknown_references(api_tenant: ApiTenant) -> None:
    t = api_tenant
    user = t.ok("POST", "/v1/users", 201, json={"email": "Ada@Example.com"})
    assert user["email"] == "Ada@example.com"
    conversation = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
    cid = conversation["id"]
    t.ok("POST", f"/v1/conversations/{cid}/messages", 201, json={"role": "user", "content": "hello"})

    # The filter of the adversarial run: a 500 on SQLite, a 200 on PostgreSQL; now a 422 on both.
    search = {"query": "hello", "mode": "fulltext", "filters": {"metadata": {"n": 2**63}}}
    refused = _error(t.call("POST", "/v1/search", json=search), 422, "invalid_input")
    assert refused["error"] == "InvalidMetadata" and "9223372036854775807" in refused["message"]
    search["filters"] = {"metadata": {"n": MAX_INTEGER}}
    assert t.ok("POST", "/v1/search", json=search)["items"] == []
    stored = t.call(
        "POST", f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "x", "metadata": {"n": -(2**63)}}
    )
    assert _error(stored, 422, "validation_error")["fields"][0]["field"] == "body.metadata"

    # JSON nested too deep: for the schema (parsed), and for the parser itself (1,000 deep).
    for depth in (MAX_JSON_DEPTH + 1, 500):
        body = {"role": "user", "content": "x", "metadata": _nested(depth)}
        deep = _error(t.call("POST", f"/v1/conversations/{cid}/messages", json=body), 422, "validation_error")
        assert deep["fields"][0]["field"] == "body.metadata"
        assert f"nested {depth} levels deep, over the limit of {MAX_JSON_DEPTH}" in deep["fields"][0]["message"]
    text = '{"role": "user", "content": "x", "metadata": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}"
    headers = {"Content-Type": "application/json"}
    parser = _error(
        t.call("POST", f"/v1/conversations/{cid}/messages", content=text, headers=headers), 422, "validation_error"
    )
    assert parser["fields"][0]["field"] == "body" and parser["fields"][0]["type"] == "json_too_deep"
    assert f"nested 1001 levels deep, over the limit of {MAX_JSON_DEPTH}" in parser["fields"][0]["message"]
    assert t.ok("GET", f"/v1/conversations/{cid}")["message_count"] == 1

    bad_email = _error(t.call("POST", "/v1/users", json={"email": "ada@localhost"}), 422, "invalid_input")
    assert "invalid domain" in bad_email["message"]
    patched = t.call("PATCH", f"/v1/users/{user['id']}", json={"email": "not an email"})
    assert "white space" in _error(patched, 422, "invalid_input")["message"]

    ghost = str(uuid.uuid4())
    checkpoint = {"iteration": 1, "state": {}, "parent_id": ghost}
    missing = _error(t.call("POST", f"/v1/conversations/{cid}/checkpoints", json=checkpoint), 404, "not_found")
    assert missing["error"] == "CheckpointNotFound" and ghost in missing["message"]
    event = {"event_type": "approval", "conversation_id": cid, "checkpoint_id": ghost}
    assert (
        _error(t.call("POST", "/v1/interaction-events", json=event), 404, "not_found")["error"] == "CheckpointNotFound"
    )
    memory = {"content": "likes tea", "source_message_ids": [ghost]}
    assert _error(t.call("POST", "/v1/memories", json=memory), 404, "not_found")["error"] == "MessageNotFound"
