"""Property-based fuzzing of the whole /v1 API from its own OpenAPI schema (schemathesis), on both backends.

Each operation gets a bounded number of generated requests (``MNEMOSTORE_FUZZ_EXAMPLES``, default 5; raise it
for a deeper run), sent to the service on loopback with a tenant's read-write key (the admin key for
/v1/tenants and /v1/admin), its path ids pointing at real objects. Every answer must be free of 5xx and match the
schema: a documented status code, content type and headers, and a body valid against the documented model.

The one 5xx allowed is semantic search on a PostgreSQL without pgvector: 501, documented, saying what to install
(also from the context routes, which rank memories and knowledge by search).
Left out: the event stream (it never ends), which ``test_api_live`` reads. The OpenAPI document itself is checked
for what clients rely on: examples on the request bodies, the bearer scheme, the error model on every operation.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mnemostore import Settings
from mnemostore.api import create_app
from tests.fix_api import ApiTenant, LiveServer, admin_headers, make_tenant

FUZZ_EXAMPLES = int(os.environ.get("MNEMOSTORE_FUZZ_EXAMPLES", "5"))


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except the one 5xx that is an answer: semantic search on a PostgreSQL without
    pgvector (501 ``search_unavailable``, documented on the search and context operations)."""
    unsupported = (
        response.status_code == 501
        and case.path.endswith(("/search", "/context"))
        and response.json().get("code") == "search_unavailable"
    )
    if unsupported:
        return True
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
NOT_FUZZED = r"/events$"


@pytest.fixture(scope="session")
def fuzz_world(live_api: LiveServer) -> tuple[ApiTenant, dict[str, str]]:
    """A tenant with one object of each kind: path ids point at them, so fuzzed requests reach the store's writes
    and reads instead of stopping at 404. The admin operations get a tenant of their own to change."""
    with httpx.Client(base_url=live_api.url, timeout=10) as client:
        t = make_tenant(client)
        user = t.ok("POST", "/v1/users", 201, json={})
        conversation = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
        cid = conversation["id"]
        message = t.ok("POST", f"/v1/conversations/{cid}/messages", 201, json={"role": "user", "content": "hi"})
        ids = {
            "tenant_id": make_tenant(client).id,
            "user_id": user["id"],
            "conversation_id": cid,
            "message_id": message["id"],
            "memory_id": t.ok("POST", "/v1/memories", 201, json={"content": "likes tea"})["id"],
            "chunk_id": t.ok("POST", "/v1/knowledge", json={"source": "s", "external_id": "e", "content": "c"})["id"],
            "checkpoint_id": t.ok(
                "POST", f"/v1/conversations/{cid}/checkpoints", 201, json={"iteration": 1, "state": {}}
            )["id"],
            "key_id": t.ok("POST", "/v1/api-keys", 201, json={"name": "spare"})["key"]["id"],
        }
        return t, ids


# The document does not depend on the database (the app opens its store only in its lifespan), so the schema is
# read at collection time and each operation becomes a test of its own; the requests go to ``live_api``.
schema = (
    schemathesis.openapi.from_dict(create_app(Settings(database_url="sqlite:///unused-for-openapi.db")).openapi())
    .include(path_regex=r"^/v1/")
    .exclude(path_regex=NOT_FUZZED)
)


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_fuzz_api(case: Any, live_api: LiveServer, fuzz_world: tuple[ApiTenant, dict[str, str]]) -> None:
    tenant, ids = fuzz_world
    # Deletes (and erasure) keep their random ids, so the objects stay for the other cases.
    if case.method != "DELETE" and not case.path.endswith("/erase"):
        for name in case.path_parameters or {}:
            if name in ids:
                case.path_parameters[name] = ids[name]
    headers = admin_headers() if case.path.startswith(("/v1/tenants", "/v1/admin")) else tenant.headers
    case.call_and_validate(base_url=live_api.url, headers=headers, checks=CHECKS, timeout=30)


def test_openapi_document(live_api: LiveServer):
    # The first request builds the OpenAPI document: seconds on a loaded machine, so not httpx's 5 s default.
    document = httpx.get(f"{live_api.url}/openapi.json", timeout=60).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["HTTPBearer"]["description"],
    }
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 45
    schemas = document["components"]["schemas"]
    for path, method, operation in operations:
        if not path.startswith("/v1/"):
            continue
        assert {"401", "404", "422", "429", "500", "503"} <= set(operation["responses"]), (method, path)
        error = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
        body = operation.get("requestBody")
        if body is not None:
            ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            assert schemas[ref].get("examples"), f"{method} {path}: request body {ref} has no example"
    assert httpx.get(f"{live_api.url}/docs", timeout=60).status_code == 200
