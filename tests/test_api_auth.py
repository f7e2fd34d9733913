"""Authentication, authorisation, limits and error answers of the HTTP service (both backends).

Every error answer has the common body (code, message, request_id) and none carries a stack trace.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mnemostore import (
    BackendUnavailable,
    ConfigurationError,
    ContentTooLarge,
    ConversationNotFound,
    DuplicateIdentity,
    EncryptionKeyError,
    InvalidCursor,
    MigrationError,
    QuotaExceeded,
    RateLimited,
    RestoreConflict,
    SchemaOutOfDate,
    TenantAlreadyExists,
)
from mnemostore.api import create_app
from mnemostore.api._logging import JsonFormatter
from mnemostore.api.errors import rule_for
from tests.fix_api import ADMIN_KEY, ApiTenant, admin_headers, api_settings, make_tenant


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"] and body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic Zm9vOmJhcg==", "Bearer nope", "Bearer mns_zz_zz", f"Bearer mns_{uuid.uuid4().hex}_x"],
    ids=["missing", "empty", "no-token", "basic", "unknown", "malformed", "unknown-tenant-key"],
)
def test_bad_or_missing_key_is_401_with_challenge(api: TestClient, authorization: str | None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = api.get("/v1/users", headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401(api: TestClient, api_tenant: ApiTenant):
    key = api_tenant.ok("POST", "/v1/api-keys", 201, json={"name": "short-lived"})
    headers = {"Authorization": f"Bearer {key['secret']}"}
    assert api.get("/v1/users", headers=headers).status_code == 200
    api_tenant.ok("DELETE", f"/v1/api-keys/{key['key']['id']}", 204)
    assert_error(api.get("/v1/users", headers=headers), 401, "unauthorized")


def test_admin_and_tenant_keys_stay_in_their_lanes(api: TestClient, api_tenant: ApiTenant):
    assert_error(api.get("/v1/users", headers=admin_headers()), 403, "forbidden")
    assert_error(api.get("/v1/tenants", headers=api_tenant.headers), 403, "forbidden")
    assert_error(api.get(f"/v1/tenants/{api_tenant.id}", headers=api_tenant.headers), 403, "forbidden")
    # A near miss of the admin key is just an unknown key.
    assert_error(api.get("/v1/tenants", headers={"Authorization": f"Bearer {ADMIN_KEY}x"}), 401, "unauthorized")


def test_no_admin_key_configured_means_no_admin_api(database_url: str):
    app = create_app(api_settings(database_url, admin_api_key=None))
    with TestClient(app) as client:
        assert_error(client.get("/v1/tenants", headers=admin_headers()), 401, "unauthorized")


def test_read_only_key_reads_but_never_writes(api_tenant: ApiTenant):
    t = api_tenant
    user = t.ok("POST", "/v1/users", 201, json={})
    conversation = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
    assert t.call("GET", f"/v1/users/{user['id']}", read_only=True).status_code == 200
    assert t.call("GET", f"/v1/conversations/{conversation['id']}/messages", read_only=True).status_code == 200
    writes = [
        ("POST", "/v1/users", {}),
        ("PATCH", f"/v1/users/{user['id']}", {"display_name": "x"}),
        ("DELETE", f"/v1/users/{user['id']}", None),
        ("POST", f"/v1/conversations/{conversation['id']}/messages", {"role": "user", "content": "hi"}),
        ("POST", "/v1/api-keys", {"name": "escalate"}),
    ]
    for method, url, body in writes:
        assert_error(t.call(method, url, json=body, read_only=True), 403, "read_only_key")
    assert t.ok("GET", f"/v1/conversations/{conversation['id']}")["message_count"] == 0
    assert t.call("GET", f"/v1/users/{user['id']}").status_code == 200


def test_suspended_tenant_is_403(api: TestClient):
    t = make_tenant(api)
    api.patch(f"/v1/tenants/{t.id}", json={"status": "suspended"}, headers=admin_headers())
    assert_error(t.call("GET", "/v1/users"), 403, "tenant_suspended")
    api.patch(f"/v1/tenants/{t.id}", json={"status": "active"}, headers=admin_headers())
    assert t.call("GET", "/v1/users").status_code == 200


def test_rate_limit_is_429_with_retry_after(api: TestClient):
    t = make_tenant(api, config={"rate_limits": {"api_key": "3/minute"}})
    answers = [t.call("GET", "/v1/users") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "3" and answers[2].headers["ratelimit-remaining"] == "0"
    assert_error(answers[3], 429, "rate_limited")
    assert 1 <= int(answers[3].headers["retry-after"]) <= 60
    # The limit is per key: the tenant's other key still gets through.
    assert t.call("GET", "/v1/users", read_only=True).status_code == 200
    metrics = api.get("/metrics").text
    assert 'mnemostore_rate_limited_total{scope="api_key"}' in metrics


def test_body_over_the_limit_is_413(database_url: str):
    app = create_app(api_settings(database_url, max_request_bytes=4096))
    with TestClient(app) as client:
        t = make_tenant(client)
        user = t.ok("POST", "/v1/users", 201, json={})
        conversation = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
        url = f"/v1/conversations/{conversation['id']}/messages"
        assert_error(t.call("POST", url, json={"role": "user", "content": "x" * 5000}), 413, "payload_too_large")

        def chunks():  # no Content-Length: the limit is counted as the body streams in
            for _ in range(10):
                yield b" " * 1000

        streamed = t.call("POST", url, content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(streamed, 413, "payload_too_large")
        assert t.ok("GET", f"/v1/conversations/{conversation['id']}")["message_count"] == 0


def test_validation_errors_name_the_fields(api_tenant: ApiTenant):
    t = api_tenant
    body = assert_error(
        t.call("POST", "/v1/users", json={"display_name": 5, "email": "a\x00b", "surname": "x"}),
        422,
        "validation_error",
    )
    assert {f["field"] for f in body["fields"]} == {"body.display_name", "body.email", "body.surname"}
    assert "a\x00b" not in json.dumps(body)  # inputs are not echoed back
    assert_error(t.call("GET", "/v1/users", params={"limit": 0}), 422, "validation_error")
    assert_error(t.call("GET", "/v1/users/not-a-uuid"), 422, "validation_error")
    broken = t.call("POST", "/v1/users", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(broken, 422, "validation_error")
    # What only the store can check is a 422 too, with its message.
    huge = {"role": "user", "content": "x" * 1_000_001}
    user = t.ok("POST", "/v1/users", 201, json={})
    conversation = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
    too_large = t.call("POST", f"/v1/conversations/{conversation['id']}/messages", json=huge)
    assert "MNEMOSTORE_MAX_CONTENT_BYTES" in assert_error(too_large, 422, "invalid_input")["message"]


def test_unknown_routes_and_methods(api: TestClient, api_tenant: ApiTenant):
    assert_error(api.get("/v2/anything"), 404, "not_found")
    assert_error(api.put("/v1/users", headers=api_tenant.headers), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (RateLimited("api_key", 3, 60, 1.2), 429, "rate_limited"),
        (QuotaExceeded("t", "max_users", 1), 403, "quota_exceeded"),
        (ConversationNotFound("c"), 404, "not_found"),
        (TenantAlreadyExists("x"), 409, "conflict"),
        (DuplicateIdentity("x"), 409, "conflict"),
        (RestoreConflict("x"), 409, "conflict"),
        (ContentTooLarge("x"), 422, "invalid_input"),
        (InvalidCursor("x"), 422, "invalid_input"),
        (SchemaOutOfDate("0001", "0002"), 503, "schema_out_of_date"),
        (BackendUnavailable("db down at db.internal"), 503, "backend_unavailable"),
        (ConfigurationError("x"), 500, "internal_error"),
        (EncryptionKeyError("x"), 500, "internal_error"),
        (MigrationError("x"), 500, "internal_error"),
        (ValueError("x"), 500, "internal_error"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_error_table(error: Exception, status: int, code: str):
    rule = rule_for(error)
    assert (rule.status, rule.code) == (status, code)


# What a driver error can carry: the statement and its values. The source line (``raise …(PRIVATE_DETAIL)``) is
# in the logged traceback; the value is not.
PRIVATE_DETAIL = "secret detail: INSERT INTO messages VALUES ('private text')"


@pytest.fixture(scope="module")
def failing_app(database_url: str) -> FastAPI:
    app = create_app(api_settings(database_url))

    async def boom() -> None:
        raise RuntimeError(PRIVATE_DETAIL)

    async def down() -> None:
        raise BackendUnavailable("cannot reach postgresql://app@db.internal:5432/prod")

    app.add_api_route("/boom", boom)
    app.add_api_route("/down", down)
    return app


def test_unexpected_error_is_a_bare_500_and_logged_without_its_message(failing_app: FastAPI, caplog):
    caplog.set_level(logging.INFO, logger="mnemostore")
    with TestClient(failing_app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "req-123"})
        body = assert_error(response, 500, "internal_error")
        assert body == {"code": "internal_error", "message": "internal error", "request_id": "req-123"}
        down = assert_error(client.get("/down"), 503, "backend_unavailable")
        assert "db.internal" not in down["message"] and down["message"]
        assert response.headers.get("retry-after") is None
    lines = [JsonFormatter().format(record) for record in caplog.records]
    logged = "\n".join(lines)
    assert "private text" not in logged and "secret detail" not in logged
    error_line = json.loads(next(line for line in lines if "unhandled" in line))
    assert error_line["request_id"] == "req-123" and error_line["error_type"] == "RuntimeError"
    assert "boom" in error_line["traceback"]
    access = [json.loads(line) for line in lines if '"message": "request"' in line]
    assert {"method": "GET", "route": "/boom", "status": 500}.items() <= access[0].items()


def test_request_id_is_echoed_or_made(api: TestClient):
    assert api.get("/healthz", headers={"X-Request-ID": "abc-1"}).headers["x-request-id"] == "abc-1"
    made = api.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert made != "bad id\twith spaces" and len(made) == 32


def test_logs_carry_no_content_and_no_keys(api: TestClient, api_tenant: ApiTenant, caplog):
    caplog.set_level(logging.DEBUG, logger="mnemostore")
    t = api_tenant
    user = t.ok("POST", "/v1/users", 201, json={"email": "ada-private@example.com"})
    conversation = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"], "title": "secret plans"})
    url = f"/v1/conversations/{conversation['id']}/messages"
    t.ok("POST", url, 201, json={"role": "user", "content": "my password is hunter2"})
    t.ok("GET", url, params={"limit": 5})
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert '"route": "/v1/conversations/{conversation_id}/messages"' in logged
    for secret in ("hunter2", "secret plans", "ada-private", t.key, t.key.split("_", 2)[2][:8], ADMIN_KEY):
        assert secret not in logged
