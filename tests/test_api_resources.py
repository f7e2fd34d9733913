"""The /v1 resources through the real app, on SQLite and PostgreSQL: what each endpoint does and answers.

Every listing is paged to the end with a small ``limit`` to check that its cursors visit each item once.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mnemostore.api import create_app
from tests.fix_api import ApiTenant, admin_headers, api_settings, make_tenant


def collect(t: ApiTenant, url: str, *, limit: int = 2, **params: Any) -> list[dict[str, Any]]:
    """Every item of a listing, page by page; fails on a repeated item or a cursor that goes nowhere."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = t.ok("GET", url, params=query)
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert page["items"], "a cursor after an empty page"
    ids = [item.get("id", item.get("external_id")) for item in items]
    assert len(ids) == len(set(ids)), "an item came twice"
    return items


def make_conversation(t: ApiTenant, **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    user = t.ok("POST", "/v1/users", 201, json={"display_name": "Ada"})
    conversation = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"], "title": "Lisbon", **body})
    return user, conversation


def test_tenant_admin_lifecycle(api: TestClient):
    admin = admin_headers()
    name = f"acme-{uuid.uuid4().hex[:8]}"
    created = api.post(
        "/v1/tenants", json={"name": name, "plan": "pro", "quotas": {"max_users": 5}, "config": {"a": 1}}, headers=admin
    )
    assert created.status_code == 201
    tenant = created.json()
    assert tenant["quotas"] == {"max_users": 5, "max_messages": None, "max_storage_bytes": None, "allowed_models": None}
    assert api.post("/v1/tenants", json={"name": name}, headers=admin).json()["code"] == "conflict"

    tid = tenant["id"]
    assert api.get(f"/v1/tenants/{tid}", headers=admin).json()["name"] == name
    updated = api.patch(f"/v1/tenants/{tid}", json={"plan": "enterprise", "config": {"b": 2}}, headers=admin).json()
    assert (updated["plan"], updated["config"], updated["quotas"]["max_users"]) == ("enterprise", {"b": 2}, 5)
    usage = api.get(f"/v1/tenants/{tid}/usage", headers=admin).json()
    assert usage == {"tenant_id": tid, "users": 0, "conversations": 0, "messages": 0, "tokens": 0, "storage_bytes": 0}

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/tenants", params=params, headers=admin).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert tid in seen and len(seen) == len(set(seen))

    assert api.delete(f"/v1/tenants/{tid}", headers=admin).status_code == 204
    gone = api.get(f"/v1/tenants/{tid}", headers=admin)
    assert (gone.status_code, gone.json()["code"]) == (404, "not_found")


def test_api_keys_shown_once_listed_and_revoked(api: TestClient, api_tenant: ApiTenant):
    t = api_tenant
    created = t.ok("POST", "/v1/api-keys", 201, json={"name": "bot", "read_only": True})
    secret, key = created["secret"], created["key"]
    assert secret.startswith("mns_") and key["read_only"] is True and secret.split("_", 2)[2].startswith(key["prefix"])
    listed = collect(t, "/v1/api-keys")
    assert [k["name"] for k in listed] == ["rw", "ro", "bot"]
    assert secret not in str(listed)
    assert api.get("/v1/users", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    t.ok("DELETE", f"/v1/api-keys/{key['id']}", 204)
    assert api.get("/v1/users", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    revoked = [k for k in collect(t, "/v1/api-keys") if k["id"] == key["id"]]
    assert revoked[0]["revoked_at"] is not None
    # The admin sees and revokes the same keys.
    by_admin = api.get(f"/v1/tenants/{t.id}/api-keys", headers=admin_headers()).json()["items"]
    assert [k["id"] for k in by_admin] == [k["id"] for k in listed]


def test_users(api_tenant: ApiTenant):
    t = api_tenant
    ada = t.ok("POST", "/v1/users", 201, json={"display_name": "Ada", "email": "ada@example.com"})
    assert t.call("POST", "/v1/users", json={"email": "ada@example.com"}).status_code == 409
    resolved = t.ok("POST", "/v1/users/resolve", json={"channel": "discord", "channel_user_id": "81", "username": "g"})
    again = t.ok("POST", "/v1/users/resolve", json={"channel": "discord", "channel_user_id": "81"})
    assert resolved["id"] == again["id"] and resolved["display_name"] == "g"
    t.ok("POST", f"/v1/users/{ada['id']}/identities", 201, json={"channel": "telegram", "channel_user_id": "5"})
    duplicate = t.call(
        "POST", f"/v1/users/{ada['id']}/identities", json={"channel": "discord", "channel_user_id": "81"}
    )
    assert duplicate.status_code == 409
    identities = t.ok("GET", f"/v1/users/{ada['id']}/identities")
    assert [(i["channel"], i["channel_user_id"]) for i in identities["items"]] == [("telegram", "5")]

    patched = t.ok("PATCH", f"/v1/users/{ada['id']}", json={"preferred_model": "gpt-4o", "email": None})
    assert (patched["preferred_model"], patched["email"], patched["display_name"]) == ("gpt-4o", None, "Ada")
    assert t.ok("GET", f"/v1/users/{ada['id']}")["preferred_model"] == "gpt-4o"
    assert {u["id"] for u in collect(t, "/v1/users", limit=1)} == {ada["id"], resolved["id"]}
    t.ok("DELETE", f"/v1/users/{ada['id']}", 204)
    assert t.call("GET", f"/v1/users/{ada['id']}").status_code == 404
    assert t.call("DELETE", f"/v1/users/{ada['id']}").status_code == 404


def test_conversations(api_tenant: ApiTenant):
    t = api_tenant
    user, first = make_conversation(t, channel="discord", metadata={"topic": "travel"})
    second = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
    third = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
    t.ok("POST", f"/v1/conversations/{second['id']}/archive")
    listed = collect(t, "/v1/conversations", user_id=user["id"])
    assert [c["id"] for c in listed] == [third["id"], second["id"], first["id"]]  # most recent activity first
    archived = collect(t, "/v1/conversations", user_id=user["id"], status="archived")
    assert [c["id"] for c in archived] == [second["id"]]
    active = collect(t, "/v1/conversations")
    assert {c["id"] for c in active} == {first["id"], third["id"]}
    assert t.call("GET", "/v1/conversations", params={"status": "archived"}).status_code == 422

    patched = t.ok("PATCH", f"/v1/conversations/{first['id']}", json={"title": None, "model_override": "gpt-4o"})
    assert (patched["title"], patched["model_override"], patched["channel"]) == (None, "gpt-4o", "discord")
    t.ok("POST", f"/v1/conversations/{first['id']}/messages", 201, json={"role": "user", "content": "hi"})
    stats = t.ok("GET", f"/v1/conversations/{first['id']}/stats")
    assert stats["message_count"] == 1 and stats["messages_by_role"] == {"user": 1}

    export = t.ok("GET", f"/v1/conversations/{first['id']}/export")
    assert export["format"] == "mnemostore.conversation" and export["messages"][0]["content"] == "hi"
    conflict = t.call("POST", "/v1/conversations/import", json=export)
    assert conflict.status_code == 409
    copy = t.ok("POST", "/v1/conversations/import", 201, json=export, params={"new_ids": "true"})
    assert copy["id"] != first["id"] and copy["message_count"] == 1
    history = t.ok("GET", f"/v1/conversations/{copy['id']}/messages")
    assert [m["content"] for m in history["messages"]] == ["hi"]

    t.ok("DELETE", f"/v1/conversations/{first['id']}", 204)
    assert t.call("GET", f"/v1/conversations/{first['id']}").status_code == 404


def test_messages_append_batch_idempotency_and_history(api_tenant: ApiTenant):
    t = api_tenant
    _, conversation = make_conversation(t)
    url = f"/v1/conversations/{conversation['id']}/messages"
    answer = t.call("POST", url, json={"role": "user", "content": "one"}, headers={"Idempotency-Key": "e-1"})
    assert answer.status_code == 201 and "idempotent-replayed" not in answer.headers
    first = answer.json()
    replay = t.call("POST", url, json={"role": "user", "content": "one"}, headers={"Idempotency-Key": "e-1"})
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first and first["seq"] == 1
    reused = t.call("POST", url, json={"role": "user", "content": "two"}, headers={"Idempotency-Key": "e-1"})
    body = reused.json()
    assert (reused.status_code, body["code"], body["error"]) == (409, "conflict", "IdempotencyConflict")
    assert "content" in body["message"]
    mismatch = t.call(
        "POST", url, json={"role": "user", "content": "x", "idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert mismatch.status_code == 422

    batch = {"messages": [{"role": "assistant", "content": f"m{i}", "prompt_tokens": i} for i in range(2, 8)]}
    added = t.ok("POST", f"{url}/batch", 201, json=batch, headers={"Idempotency-Key": "b-1"})["items"]
    replayed = t.call("POST", f"{url}/batch", json=batch, headers={"Idempotency-Key": "b-1"})
    assert replayed.status_code == 201 and replayed.headers["idempotent-replayed"] == "true"
    again = replayed.json()["items"]
    grown = {"messages": [*batch["messages"], {"role": "user", "content": "one more"}]}
    refused = t.call(
        "POST", f"{url}/batch", json={"messages": grown["messages"][1:]}, headers={"Idempotency-Key": "b-1"}
    )
    assert refused.status_code == 409  # message 0 of this batch is not the message b-1#0 was used for
    assert [m["seq"] for m in added] == list(range(2, 8)) and [m["id"] for m in again] == [m["id"] for m in added]
    assert added[0]["idempotency_key"] == "b-1#0"

    newest = t.ok("GET", url, params={"limit": 3})
    assert [m["content"] for m in newest["messages"]] == ["m5", "m6", "m7"] and newest["after"] is None
    older = t.ok("GET", url, params={"limit": 3, "before": newest["before"]})
    assert [m["content"] for m in older["messages"]] == ["m2", "m3", "m4"]
    oldest = t.ok("GET", url, params={"limit": 3, "before": older["before"]})
    assert [m["content"] for m in oldest["messages"]] == ["one"] and oldest["before"] is None
    newer = t.ok("GET", url, params={"limit": 3, "after": oldest["after"]})
    assert [m["content"] for m in newer["messages"]] == ["m2", "m3", "m4"]
    bad = t.call("GET", url, params={"before": "not-a-cursor"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_input")

    message = t.ok("GET", f"/v1/messages/{first['id']}")
    assert message["content"] == "one"
    t.ok("DELETE", f"/v1/messages/{first['id']}", 204)
    assert t.call("GET", f"/v1/messages/{first['id']}").status_code == 404
    assert t.ok("GET", f"/v1/conversations/{conversation['id']}")["message_count"] == 6


def test_memories(api_tenant: ApiTenant):
    t = api_tenant
    user = t.ok("POST", "/v1/users", 201, json={})
    facts = ["drinks green tea", "lives in Lisbon", "has a cat named Turing", "writes compilers", "runs marathons"]
    stored = [
        t.ok("POST", "/v1/memories", 201, json={"content": fact, "user_id": user["id"], "importance": i / 10})
        for i, fact in enumerate(facts)
    ]
    t.ok("POST", "/v1/memories", 201, json={"content": "the meeting moved to 3 pm", "tier": "working", "importance": 1})
    mine = collect(t, "/v1/memories", user_id=user["id"])
    assert [m["content"] for m in mine] == facts[::-1]
    assert [m["content"] for m in collect(t, "/v1/memories", tier="working")] == ["the meeting moved to 3 pm"]
    assert len(collect(t, "/v1/memories", limit=4)) == 6
    memory = t.ok("GET", f"/v1/memories/{stored[0]['id']}")
    assert memory["importance"] == 0.0
    assert t.ok("GET", f"/v1/memories/{stored[0]['id']}/history") == {"items": [], "next_cursor": None}
    again = t.ok("POST", "/v1/memories", 201, json={"content": facts[0], "user_id": user["id"], "importance": 0.7})
    assert again["id"] == stored[0]["id"] and again["importance"] == 0.7  # a duplicate updates the memory
    versions = t.ok("GET", f"/v1/memories/{stored[0]['id']}/history")["items"]
    assert [(v["content"], v["importance"]) for v in versions] == [(facts[0], 0.0)]
    t.ok("DELETE", f"/v1/memories/{stored[0]['id']}", 204)
    assert t.call("GET", f"/v1/memories/{stored[0]['id']}").status_code == 404
    assert t.call("GET", f"/v1/memories/{stored[0]['id']}/history").status_code == 404
    out_of_range = t.call("POST", "/v1/memories", json={"content": "x", "importance": 2})
    assert out_of_range.status_code == 422 and out_of_range.json()["fields"][0]["field"] == "body.importance"


def test_knowledge_and_search(api_tenant: ApiTenant):
    t = api_tenant
    one = {"source": "handbook", "external_id": "p#1", "content": "Hotels up to 180 EUR.", "title": "Hotels"}
    chunk = t.ok("POST", "/v1/knowledge", json=one)
    assert t.ok("POST", "/v1/knowledge", json=one)["updated_at"] == chunk["updated_at"]  # unchanged: no write
    bulk = {"source": "handbook", "chunks": [{"external_id": f"p#{i}", "content": f"rule {i}"} for i in range(2, 6)]}
    assert len(t.ok("POST", "/v1/knowledge/bulk", json=bulk)["items"]) == 4
    listed = collect(t, "/v1/knowledge", source="handbook")
    assert [c["external_id"] for c in listed] == [f"p#{i}" for i in range(1, 6)]
    assert collect(t, "/v1/knowledge", source="other") == []
    assert t.ok("GET", f"/v1/knowledge/{chunk['id']}")["content"] == "Hotels up to 180 EUR."
    t.ok("DELETE", f"/v1/knowledge/{chunk['id']}", 204)
    assert t.call("GET", f"/v1/knowledge/{chunk['id']}").status_code == 404
    for url, body in (
        ("/v1/search", {"scope": "knowledge"}),
        ("/v1/search", {}),
        ("/v1/knowledge/search", {}),
    ):
        found = t.call("POST", url, json={"query": "rule", "mode": "fulltext", **body}, read_only=True)
        assert found.status_code == 200, found.text
        hits = found.json()["items"]
        assert {h["title"] for h in hits} == {None} and len(hits) == 4
        assert hits[0]["kind"] == "knowledge" and hits[0]["source"] == "handbook" and "fulltext" in hits[0]["scores"]
        assert t.call("POST", url, json={"query": ""}).status_code == 422
    messages_only = t.ok("POST", "/v1/search", json={"query": "rule", "mode": "fulltext", "scope": "messages"})
    assert messages_only["items"] == []
    # Semantic and hybrid need vectors: with the embedder of the tests, an index on SQLite (200), none on a
    # PostgreSQL without pgvector (501, saying so).
    semantic = t.call("POST", "/v1/search", json={"query": "hotel budget", "mode": "semantic"})
    assert semantic.status_code in (200, 501), semantic.text
    if semantic.status_code == 501:
        assert semantic.json()["code"] == "search_unavailable" and "pgvector" in semantic.json()["message"]
    # Without a mode the search answers on both: hybrid where vectors can be searched, full text where they cannot.
    default = t.ok("POST", "/v1/search", json={"query": "rule 3"}, read_only=True)
    assert default["items"][0]["content"] == "rule 3" and default["pending"] == 0  # the search embedded them
    if semantic.status_code == 501:
        assert (default["mode"], default["retrievers"]) == ("fulltext", ["fulltext"])
    else:
        assert (default["mode"], default["retrievers"]) == ("hybrid", ["fulltext", "semantic"])


def test_search_without_an_embedder_answers_by_full_text_and_explains_semantic(database_url: str):
    app = create_app(api_settings(database_url, embedder="none"))
    with TestClient(app, raise_server_exceptions=False) as client:
        t = make_tenant(client)
        t.ok("POST", "/v1/knowledge", json={"source": "faq", "external_id": "1", "content": "Checkout is at noon."})
        for url in ("/v1/search", "/v1/knowledge/search"):
            found = t.ok("POST", url, json={"query": "when is checkout?"})
            assert [h["content"] for h in found["items"]] == ["Checkout is at noon."]
            assert (found["mode"], found["retrievers"]) == ("fulltext", ["fulltext"])
            for mode in ("semantic", "hybrid"):
                refused = t.call("POST", url, json={"query": "when is checkout?", "mode": mode})
                assert refused.status_code == 400, refused.text
                assert refused.json()["code"] == "embedder_not_configured"
                assert "MNEMOSTORE_EMBEDDER" in refused.json()["message"]


def test_agent_audit_and_checkpoints(api_tenant: ApiTenant):
    t = api_tenant
    _, conversation = make_conversation(t)
    cid = conversation["id"]
    for i in range(3):
        t.ok("POST", "/v1/tool-executions", 201, json={"tool": "search", "conversation_id": cid, "result": [i]})
    t.ok("POST", "/v1/tool-executions", 201, json={"tool": "calc", "success": False, "error": "div by zero"})
    assert [x["result"] for x in collect(t, "/v1/tool-executions", conversation_id=cid)] == [[2], [1], [0]]
    assert [x["tool"] for x in collect(t, "/v1/tool-executions", tool="calc")] == ["calc"]
    assert len(collect(t, "/v1/tool-executions", limit=1)) == 4

    url = f"/v1/conversations/{cid}/checkpoints"
    assert t.call("GET", f"{url}/latest").status_code == 404
    saved = [t.ok("POST", url, 201, json={"iteration": i, "state": {"step": i}}) for i in range(1, 4)]
    assert saved[1]["parent_id"] == saved[0]["id"]
    root = t.ok("POST", url, 201, json={"iteration": 3, "state": {}, "parent_id": None})
    assert root["parent_id"] is None
    assert t.ok("GET", f"{url}/latest")["id"] == root["id"]
    assert [c["id"] for c in collect(t, url)] == [root["id"], saved[2]["id"], saved[1]["id"], saved[0]["id"]]
    assert t.ok("GET", f"/v1/checkpoints/{saved[0]['id']}")["state"] == {"step": 1}

    t.ok("POST", "/v1/interaction-events", 201, json={"event_type": "approval", "conversation_id": cid})
    t.ok("POST", "/v1/interaction-events", 201, json={"event_type": "goal", "goal_modified": True})
    assert [e["event_type"] for e in collect(t, "/v1/interaction-events", limit=1)] == ["goal", "approval"]
    assert [e["event_type"] for e in collect(t, "/v1/interaction-events", conversation_id=cid)] == ["approval"]

    metrics = [
        {"metric_type": "latency_ms", "value": 812.5, "conversation_id": cid, "recorded_at": "2026-01-01T10:00:00Z"},
        {"metric_type": "latency_ms", "value": 640, "recorded_at": "2026-01-01T11:00:00+02:00"},
        {"metric_type": "tokens", "value": 508, "recorded_at": "2026-01-02T10:00:00Z"},
    ]
    assert len(t.ok("POST", "/v1/agent-metrics", 201, json={"metrics": metrics})["items"]) == 3
    assert [m["value"] for m in collect(t, "/v1/agent-metrics")] == [508, 812.5, 640]
    assert [m["value"] for m in collect(t, "/v1/agent-metrics", metric_type="latency_ms")] == [812.5, 640]
    recent = collect(t, "/v1/agent-metrics", since="2026-01-01T09:30:00Z")
    assert [m["value"] for m in recent] == [508, 812.5]
    naive = t.call("GET", "/v1/agent-metrics", params={"since": "2026-01-01T09:30:00"})
    assert naive.status_code == 422 and naive.json()["fields"][0]["field"] == "query.since"


@pytest.mark.parametrize("listing", ["tool-executions", "interaction-events", "agent-metrics", "memories"])
def test_damaged_cursor_is_422(api_tenant: ApiTenant, listing: str):
    answer = api_tenant.call("GET", f"/v1/{listing}", params={"cursor": "eyJ4Ijox"})
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_input")


def test_quota_is_403_and_says_so(api: TestClient):
    t = make_tenant(api, quotas={"max_users": 1})
    t.ok("POST", "/v1/users", 201, json={})
    refused = t.call("POST", "/v1/users", json={})
    assert (refused.status_code, refused.json()["code"]) == (403, "quota_exceeded")
    assert "max_users" in refused.json()["message"]


def test_history_answers_exactly_what_its_documented_model_would(api_tenant: ApiTenant):
    """The history route serialises its page directly (the hot read); the answer must be byte-for-byte the shape,
    keys and formats of HistoryOut, the model its OpenAPI schema documents."""
    from mnemostore.api.schemas import HistoryOut, MessageOut

    t = api_tenant
    _, conversation = make_conversation(t)
    url = f"/v1/conversations/{conversation['id']}/messages"
    t.ok("POST", url, 201, json={"role": "user", "content": "olá 👋", "metadata": {"a": [1, 2.5, None, {"b": "ü"}]}})
    t.ok(
        "POST",
        url,
        201,
        json={"role": "assistant", "content": "x", "model": "gpt-4o-mini", "prompt_tokens": 3, "completion_tokens": 9},
        headers={"Idempotency-Key": "k-1"},
    )
    for params in ({"limit": 1}, {"limit": 50}):
        answer = t.call("GET", url, params=params)
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert set(body) == set(HistoryOut.model_fields)
        assert all(set(m) == set(MessageOut.model_fields) for m in body["messages"])
        assert HistoryOut.model_validate(body).model_dump(mode="json") == body
    assert [m["idempotency_key"] for m in body["messages"]] == [None, "k-1"]
    assert body["messages"][0]["metadata"] == {"a": [1, 2.5, None, {"b": "ü"}]}


def test_messages_said_in_the_past_keep_their_time(api_tenant: ApiTenant):
    t = api_tenant
    _, conversation = make_conversation(t)
    url = f"/v1/conversations/{conversation['id']}/messages"
    one = t.ok("POST", url, 201, json={"role": "user", "content": "then", "created_at": "2023-05-08T14:56:12+01:00"})
    assert one["created_at"] == "2023-05-08T13:56:12Z"
    batch = {
        "messages": [
            {"role": "user", "content": "a", "created_at": "2023-05-09T10:00:00Z"},
            {"role": "user", "content": "b"},
        ]
    }
    added = t.ok("POST", f"{url}/batch", 201, json=batch)["items"]
    assert added[0]["created_at"] == "2023-05-09T10:00:00Z" and added[1]["created_at"] > "2026"
    naive = t.call("POST", url, json={"role": "user", "content": "x", "created_at": "2023-05-08T13:56:12"})
    assert naive.status_code == 422
    history = t.ok("GET", url)["messages"]
    assert [(m["seq"], m["created_at"][:10]) for m in history][:2] == [(1, "2023-05-08"), (2, "2023-05-09")]
