"""``/v1/memory``: the three-line memory API over HTTP, with the caller's own user ids, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.fix_api import ApiTenant


def test_add_then_search_get_all_update_history_delete(api_tenant: ApiTenant) -> None:
    t = api_tenant
    [fact] = t.ok("POST", "/v1/memory/add", 201, json={"content": "I'm vegetarian", "user_id": "alice"})["items"]
    assert fact["content"] == "I'm vegetarian"
    found = t.ok("POST", "/v1/memory/search", json={"query": "vegetarian", "user_id": "alice"}, read_only=True)
    assert [h["id"] for h in found["items"]] == [fact["id"]]
    assert found["mode"] in {"fulltext", "hybrid"} and found["pending"] == 0
    assert [m["id"] for m in t.ok("GET", "/v1/memory", params={"user_id": "alice"})["items"]] == [fact["id"]]
    edited = t.ok("PATCH", f"/v1/memory/{fact['id']}", json={"content": "I'm vegan"})
    assert edited["content"] == "I'm vegan"
    assert [v["content"] for v in t.ok("GET", f"/v1/memory/{fact['id']}/history")["items"]] == ["I'm vegetarian"]
    assert t.ok("GET", f"/v1/memory/{fact['id']}")["content"] == "I'm vegan"
    t.ok("DELETE", f"/v1/memory/{fact['id']}", 204)
    assert t.call("GET", f"/v1/memory/{fact['id']}").status_code == 404
    # The same memory through the full resource API: one store, two ways in.
    assert t.call("GET", f"/v1/memories/{fact['id']}").status_code == 404


def test_a_chat_and_delete_all(api_tenant: ApiTenant) -> None:
    t = api_tenant
    chat = {
        "messages": [
            {"role": "user", "content": "I moved to Berlin"},
            {"role": "assistant", "content": "Welcome!"},
            {"role": "user", "content": "I work nights"},
        ],
        "user_id": "bob@example.com",
    }
    stored = t.ok("POST", "/v1/memory/add", 201, json=chat)["items"]
    assert [m["content"] for m in stored] == ["I moved to Berlin", "I work nights"]
    conversation_id = stored[0]["metadata"]["conversation_id"]
    history = t.ok("GET", f"/v1/conversations/{conversation_id}/messages", params={"limit": 10})
    assert [m["content"] for m in history["messages"]] == [m["content"] for m in chat["messages"]]
    t.ok("POST", "/v1/memory/add", 201, json={"content": "Carol sings", "user_id": "carol"})
    assert t.ok("DELETE", "/v1/memory", params={"user_id": "bob@example.com"}) == {"deleted": 2}
    assert t.ok("GET", "/v1/memory", params={"user_id": "bob@example.com"})["items"] == []
    assert len(t.ok("GET", "/v1/memory", params={"user_id": "carol"})["items"]) == 1


def test_bad_bodies_and_keys(api_tenant: ApiTenant) -> None:
    t = api_tenant
    both = t.call("POST", "/v1/memory/add", json={"content": "x", "messages": [], "user_id": "a"})
    assert both.status_code == 422
    neither = t.call("POST", "/v1/memory/add", json={"user_id": "a"})
    assert neither.status_code == 422 and "content" in neither.text
    assert t.call("POST", "/v1/memory/add", json={"content": "x", "user_id": ""}).status_code == 422
    read_only = t.call("POST", "/v1/memory/add", json={"content": "x", "user_id": "a"}, read_only=True)
    assert read_only.status_code == 403
    unknown = t.ok("POST", "/v1/memory/search", json={"query": "x", "user_id": "nobody"})
    assert unknown["items"] == []
    assert t.call("GET", "/v1/memory").status_code == 422  # user_id is required: never every user's memories
