"""The cross-tenant matrix, generated from the app's routes: tenant B's key, tenant A's ids, every endpoint.

* every route with an id in its path answers B exactly as it answers an id that exists nowhere: 404, same code,
  same message once the ids are swapped; deletes and updates leave A's objects as they were;
* every route that takes an id in its body or query (a conversation's user, a listing's filter) finds nothing
  of A's: 404 for writes, empty pages for listings;
* no answer to B holds a byte of A's data (ids, content, names).

A new route fails ``test_every_route_is_classified`` until it is added to one of the tables below.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fix_api import ApiTenant, make_tenant

# Bodies that pass validation, so that what answers is the isolation check and not the validator.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/users/{user_id}"): {"display_name": "B"},
    ("POST", "/v1/users/{user_id}/identities"): {"channel": "b", "channel_user_id": "b-1"},
    ("PATCH", "/v1/conversations/{conversation_id}"): {"title": "B"},
    ("POST", "/v1/conversations/{conversation_id}/messages"): {"role": "user", "content": "from B"},
    ("POST", "/v1/conversations/{conversation_id}/messages/batch"): {"messages": [{"role": "user", "content": "B"}]},
    ("POST", "/v1/conversations/{conversation_id}/checkpoints"): {"iteration": 9, "state": {"b": 1}},
    ("PATCH", "/v1/memory/{memory_id}"): {"content": "B"},
    ("PATCH", "/v1/memories/{memory_id}"): {"content": "B"},
    ("POST", "/v1/conversations/{conversation_id}/consolidate"): {"keep_recent": 0, "min_messages": 1},
    ("POST", "/v1/conversations/{conversation_id}/checkpoints/prune"): {"keep": 0},
    ("POST", "/v1/conversations/{conversation_id}/context"): {"query": "anything", "max_tokens": 500},
}

# Path parameters that are names, not ids: B names A's channel, channel user and flag (names are per tenant).
NAMES: dict[str, str] = {"channel": "a-channel", "channel_user_id": "a-user", "flag": "a-flag", "iteration": "1"}

# Routes without path ids whose body or query names other objects: (body or None, query or None, status).
REFERENCES: dict[tuple[str, str], tuple[Any, dict[str, str] | None, int]] = {
    ("POST", "/v1/conversations"): ({"user_id": "{user_id}"}, None, 404),
    ("POST", "/v1/memories"): ({"content": "B", "user_id": "{user_id}"}, None, 404),
    ("POST", "/v1/tool-executions"): ({"tool": "t", "conversation_id": "{conversation_id}"}, None, 404),
    ("POST", "/v1/interaction-events"): ({"event_type": "e", "conversation_id": "{conversation_id}"}, None, 404),
    ("POST", "/v1/agent-metrics"): (
        {"metrics": [{"metric_type": "m", "value": 1, "conversation_id": "{conversation_id}"}]},
        None,
        404,
    ),
    ("POST", "/v1/conversations/import"): ("{export}", {"user_id": "{user_id}", "new_ids": "true"}, 404),
    ("GET", "/v1/conversations"): (None, {"user_id": "{user_id}"}, 200),
    ("GET", "/v1/memories"): (None, {"user_id": "{user_id}"}, 200),
    ("GET", "/v1/tool-executions"): (None, {"conversation_id": "{conversation_id}"}, 200),
    ("GET", "/v1/interaction-events"): (None, {"conversation_id": "{conversation_id}"}, 200),
    ("GET", "/v1/agent-metrics"): (None, {"conversation_id": "{conversation_id}"}, 200),
    ("GET", "/v1/knowledge"): (None, {"source": "{source}"}, 200),
    # A's own user id (external) means, in B, a user of B's: none yet, then one B creates (last, so the rest
    # find nothing of B's either).
    ("GET", "/v1/memory"): (None, {"user_id": "{external_user}"}, 200),
    ("POST", "/v1/memory/search"): ({"query": "{marker}", "user_id": "{external_user}", "mode": "fulltext"}, None, 200),
    ("POST", "/v1/memory/context"): (
        {"conversation_id": "{conversation_id}", "user_id": "{external_user}", "max_tokens": 500},
        None,
        404,
    ),
    ("DELETE", "/v1/memory"): (None, {"user_id": "{external_user}"}, 200),
    ("POST", "/v1/memory/add"): ({"content": "B", "user_id": "{external_user}"}, None, 201),
    ("GET", "/v1/users/lookup"): (None, {"email": "{marker}@a.example"}, 404),
    ("POST", "/v1/conversations/resolve"): ({"external_id": "b-thread", "user_id": "{user_id}"}, None, 404),
    ("GET", "/v1/conversations/lookup"): (None, {"external_id": "{conversation_external_id}"}, 404),
    ("DELETE", "/v1/memories"): (None, {"user_id": "{user_id}"}, 200),
    ("POST", "/v1/memories/segments"): ({"content": "B", "source_message_ids": ["{message_id}"]}, None, 404),
    ("GET", "/v1/knowledge/lookup"): (None, {"source": "{source}", "external_id": "{external_id}"}, 200),
    ("DELETE", "/v1/knowledge"): (None, {"source": "{source}", "external_id": "{external_id}"}, 200),
    ("POST", "/v1/rate-limits/check"): ({"user_id": "{user_id}"}, None, 404),
    ("GET", "/v1/export"): (None, {"user_id": "{user_id}"}, 404),
}

# Routes that name no other object: B's answer must simply hold nothing of A's.
SELF_CONTAINED: dict[tuple[str, str], Any] = {
    ("GET", "/v1/users"): None,
    ("GET", "/v1/api-keys"): None,
    ("POST", "/v1/users"): {"display_name": "B"},
    ("POST", "/v1/users/resolve"): {"channel": "a-channel", "channel_user_id": "a-user"},
    ("POST", "/v1/api-keys"): {"name": "b"},
    ("POST", "/v1/knowledge"): {"source": "{source}", "external_id": "{external_id}", "content": "B's text"},
    ("POST", "/v1/knowledge/bulk"): {
        "source": "{source}",
        "chunks": [{"external_id": "{external_id}", "content": "B"}],
    },
    ("POST", "/v1/search"): {"query": "{marker}", "mode": "fulltext"},
    ("POST", "/v1/knowledge/search"): {"query": "{marker}", "mode": "fulltext"},
    ("POST", "/v1/users/resolve/email"): {"email": "{marker}@a.example"},
    ("POST", "/v1/users/resolve/external-id"): {"external_id": "{external_user}"},
    ("GET", "/v1/tenant"): None,
    ("GET", "/v1/indexing"): None,
    # Named by A's names: B reaches its own channel, sessions, presence and flags of those names.
    ("GET", "/v1/channels/{channel}"): None,
    ("PUT", "/v1/channels/{channel}"): {"default_model": "b-model"},
    ("GET", "/v1/channels/{channel}/sessions/{channel_user_id}"): None,
    ("PATCH", "/v1/channels/{channel}/sessions/{channel_user_id}"): {"model": "b-model"},
    ("POST", "/v1/channels/{channel}/sessions/{channel_user_id}/touch"): None,
    ("DELETE", "/v1/channels/{channel}/sessions/{channel_user_id}"): None,
    ("GET", "/v1/channels/{channel}/active-users"): None,
    ("GET", "/v1/channels/{channel}/active-users/count"): None,
    ("GET", "/v1/feature-flags/{flag}"): None,
    ("PUT", "/v1/feature-flags/{flag}"): {"value": False},
    ("DELETE", "/v1/feature-flags/{flag}"): None,
}

PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class World:
    a: ApiTenant
    b: ApiTenant
    ids: dict[str, str]
    marker: str
    export: dict[str, Any]

    def fill(self, value: Any, ids: dict[str, str]) -> Any:
        if value == "{export}":
            return self.export
        if isinstance(value, str):
            return PARAM.sub(lambda m: ids.get(m.group(1), NAMES.get(m.group(1), self.marker)), value)
        if isinstance(value, dict):
            return {k: self.fill(v, ids) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v, ids) for v in value]
        return value

    def secrets(self) -> list[str]:
        """Strings of A's that must never reach B."""
        # Not the caller's own user id: B can name the same string, for a user of its own.
        return [self.marker, self.a.key, *(v for k, v in self.ids.items() if k != "external_user")]


@pytest.fixture(scope="module")
def world(api: TestClient) -> Iterator[World]:
    marker = f"A-SECRET-{uuid.uuid4().hex[:10]}"
    a, b = make_tenant(api), make_tenant(api)
    user = a.ok("POST", "/v1/users/resolve", json={"channel": "a-channel", "channel_user_id": "a-user"})
    a.ok("PATCH", f"/v1/users/{user['id']}", json={"display_name": marker, "email": f"{marker}@a.example"})
    conversation = a.ok(
        "POST",
        "/v1/conversations",
        201,
        json={"user_id": user["id"], "title": marker, "external_id": f"{marker}-thread", "channel": "a-channel"},
    )
    cid = conversation["id"]
    message = a.ok("POST", f"/v1/conversations/{cid}/messages", 201, json={"role": "user", "content": marker})
    memory = a.ok("POST", "/v1/memories", 201, json={"content": marker, "user_id": user["id"]})
    external_user = f"user-{uuid.uuid4().hex[:8]}"
    a.ok("POST", "/v1/memory/add", 201, json={"content": marker, "user_id": external_user})
    chunk = a.ok("POST", "/v1/knowledge", json={"source": marker, "external_id": f"{marker}-1", "content": marker})
    a.ok("POST", "/v1/tool-executions", 201, json={"tool": marker, "conversation_id": cid, "result": marker})
    checkpoint = a.ok(
        "POST", f"/v1/conversations/{cid}/checkpoints", 201, json={"iteration": 1, "state": {"m": marker}}
    )
    a.ok("POST", "/v1/interaction-events", 201, json={"event_type": "approval", "conversation_id": cid})
    a.ok(
        "POST",
        "/v1/agent-metrics",
        201,
        json={"metrics": [{"metric_type": marker, "value": 1, "conversation_id": cid}]},
    )
    key = a.ok("POST", "/v1/api-keys", 201, json={"name": marker})
    a.ok("PUT", "/v1/channels/a-channel", json={"default_model": marker, "settings": {"m": marker}})
    a.ok("PATCH", "/v1/channels/a-channel/sessions/a-user", json={"data": {"m": marker}})
    a.call("POST", f"/v1/channels/a-channel/active-users/{user['id']}")
    a.call("PUT", "/v1/feature-flags/a-flag", json={"value": True})
    ids = {
        "user_id": user["id"],
        "conversation_id": cid,
        "message_id": message["id"],
        "memory_id": memory["id"],
        "chunk_id": chunk["id"],
        "checkpoint_id": checkpoint["id"],
        "key_id": key["key"]["id"],
        "source": marker,
        "external_id": f"{marker}-1",
        "external_user": external_user,
        "conversation_external_id": f"{marker}-thread",
    }
    export = a.ok("GET", f"/v1/conversations/{cid}/export")
    yield World(a=a, b=b, ids=ids, marker=marker, export=export)


def tenant_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the tenant API, from the app's own OpenAPI document (so none is forgotten)."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/v1/") and not path.startswith(("/v1/tenants", "/v1/admin")):
            routes.extend((method.upper(), path) for method in operations)
    return sorted(routes)


def path_routes(app: FastAPI) -> list[tuple[str, str]]:
    """The routes with an object's id in their path (not only names: those are SELF_CONTAINED)."""
    return [(m, p) for m, p in tenant_routes(app) if set(PARAM.findall(p)) - set(NAMES)]


def test_every_route_is_classified(api_app: FastAPI):
    with_ids = set(path_routes(api_app))
    unclassified = [
        r for r in tenant_routes(api_app) if r not in with_ids and r not in REFERENCES and r not in SELF_CONTAINED
    ]
    assert unclassified == []
    assert len(path_routes(api_app)) >= 25


def _normalise(text: str, ids: list[str]) -> str:
    for value in ids:
        text = text.replace(value, "<id>")
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text)


def test_path_ids_of_another_tenant_do_not_exist(api_app: FastAPI, world: World):
    checked = 0
    for method, path in path_routes(api_app):
        body = world.fill(BODIES.get((method, path)), world.ids)
        foreign = world.b.call(method, world.fill(path, world.ids), json=body)
        nowhere_ids = {name: str(uuid.uuid4()) for name in world.ids}
        nowhere = world.b.call(method, world.fill(path, nowhere_ids), json=world.fill(body, nowhere_ids))
        where = f"{method} {path}"
        assert foreign.status_code == 404, (where, foreign.status_code, foreign.text)
        assert nowhere.status_code == 404, (where, nowhere.status_code, nowhere.text)
        assert foreign.json()["code"] == nowhere.json()["code"] == "not_found", where
        assert _normalise(foreign.json()["message"], [*world.ids.values()]) == _normalise(
            nowhere.json()["message"], list(nowhere_ids.values())
        ), where
        leaked = [s for s in world.secrets() if s in foreign.text and s not in foreign.request.url.path]
        assert leaked == [], where
        checked += 1
    assert checked == len(path_routes(api_app))


def test_ids_in_bodies_and_filters_find_nothing(world: World):
    for (method, path), (body, query, status) in REFERENCES.items():
        sent_body, sent_query = world.fill(body, world.ids), world.fill(query, world.ids)
        answer = world.b.call(method, path, json=sent_body, params=sent_query)
        where = f"{method} {path}"
        assert answer.status_code == status, (where, answer.text)
        if status == 200:
            assert answer.json().get("items", []) == [], where
            assert answer.json().get("deleted", 0) == 0, where
        # A 404 may quote the id B sent ("user … not found"), never anything else of A's.
        sent = f"{sent_body} {sent_query}"
        assert [s for s in world.secrets() if s in answer.text and s not in sent] == [], where
    # B's delete of "its" user of that id left A's memories as they were.
    kept = world.a.ok("GET", "/v1/memory", params={"user_id": world.ids["external_user"]})["items"]
    assert [m["content"] for m in kept] == [world.marker]


def test_answers_to_b_hold_nothing_of_a(world: World):
    for (method, path), body in SELF_CONTAINED.items():
        answer = world.b.call(method, world.fill(path, world.ids), json=world.fill(body, world.ids))
        assert answer.status_code < 500, (method, path, answer.text)
        sent = world.fill(body, world.ids)
        leaked = [s for s in world.secrets() if s in answer.text and s not in str(sent)]
        assert leaked == [], (method, path)


def test_a_is_untouched(world: World):
    a, ids = world.a, world.ids
    assert a.ok("GET", f"/v1/users/{ids['user_id']}")["display_name"] == world.marker
    conversation = a.ok("GET", f"/v1/conversations/{ids['conversation_id']}")
    assert (conversation["title"], conversation["status"], conversation["message_count"]) == (
        world.marker,
        "active",
        1,
    )
    assert a.ok("GET", f"/v1/messages/{ids['message_id']}")["content"] == world.marker
    assert a.ok("GET", f"/v1/memories/{ids['memory_id']}")["content"] == world.marker
    assert a.ok("GET", f"/v1/knowledge/{ids['chunk_id']}")["content"] == world.marker
    assert a.ok("GET", f"/v1/checkpoints/{ids['checkpoint_id']}")["state"] == {"m": world.marker}
    assert a.ok("GET", f"/v1/conversations/{ids['conversation_id']}/checkpoints/latest")["iteration"] == 1
    keys = a.ok("GET", "/v1/api-keys")["items"]
    assert [k["revoked_at"] for k in keys if k["id"] == ids["key_id"]] == [None]
    assert a.ok("GET", f"/v1/users/{ids['user_id']}/identities")["items"][0]["channel"] == "a-channel"
    assert a.ok("GET", "/v1/channels/a-channel")["default_model"] == world.marker
    assert a.ok("GET", "/v1/channels/a-channel/sessions/a-user")["data"] == {"m": world.marker}
    assert a.ok("GET", "/v1/channels/a-channel/active-users")["items"] == [ids["user_id"]]
    assert a.ok("GET", "/v1/feature-flags/a-flag")["enabled"] is True
    # What B's searches for the marker did not find is there for A.
    found = a.ok("POST", "/v1/search", json={"query": world.marker, "mode": "fulltext", "limit": 50})["items"]
    assert {h["kind"] for h in found} == {"messages", "memories", "knowledge"}
