"""HTTP service fixtures: the real app on the session's database (both backends), in-process or on loopback.

``api`` is a ``TestClient`` around ``create_app`` (its lifespan opens one AsyncMnemoStore in the client's own
event loop, as uvicorn would); ``live_api`` is the same app served by uvicorn on 127.0.0.1 in a thread, for what
needs a real socket (Server-Sent Events, the schema fuzzing). ``api_tenant`` makes a tenant through the admin
endpoints, with a read-write and a read-only key.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mnemostore import Settings
from mnemostore.api import create_app

ADMIN_KEY = "test-admin-key-" + "k" * 32


def api_settings(database_url: str, **overrides: Any) -> Settings:
    """The service's settings in the tests: the hashing embedder (deterministic, no model to load) and no
    background indexer, unless a test asks for them."""
    values = {"database_url": database_url, "admin_api_key": ADMIN_KEY, "embedder": "hashing", "server_indexer": False}
    return Settings(**{**values, **overrides})


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class ApiTenant:
    """A tenant made through the API, with a read-write and a read-only key."""

    client: TestClient | httpx.Client
    id: str
    key: str
    read_only_key: str
    created: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def read_only_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read_only_key}"}

    def call(self, method: str, url: str, *, read_only: bool = False, **kwargs: Any) -> httpx.Response:
        headers = {**(self.read_only_headers if read_only else self.headers), **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def ok(self, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, url, **kwargs)
        assert response.status_code == status, (method, url, response.status_code, response.text)
        return response.json() if response.content else None


def make_tenant(client: TestClient | httpx.Client, **body: Any) -> ApiTenant:
    body = {"name": f"api-{uuid.uuid4().hex[:12]}", **body}
    response = client.post("/v1/tenants", json=body, headers=admin_headers())
    assert response.status_code == 201, response.text
    tenant_id = response.json()["id"]
    keys = []
    for read_only in (False, True):
        created = client.post(
            f"/v1/tenants/{tenant_id}/api-keys",
            json={"name": "ro" if read_only else "rw", "read_only": read_only},
            headers=admin_headers(),
        )
        assert created.status_code == 201, created.text
        keys.append(created.json()["secret"])
    return ApiTenant(client=client, id=tenant_id, key=keys[0], read_only_key=keys[1])


@pytest.fixture(scope="session")
def api_app(database_url: str) -> FastAPI:
    return create_app(api_settings(database_url))


@pytest.fixture(scope="session")
def api(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api_tenant(api: TestClient) -> ApiTenant:
    return make_tenant(api)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """An app served by uvicorn on 127.0.0.1 in a background thread (stopped by ``stop``)."""

    def __init__(self, app: FastAPI) -> None:
        # Bound here and handed to uvicorn, so that no other process (another test run) can take the port between
        # choosing it and listening on it.
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name=f"uvicorn-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.socket.close()


@pytest.fixture(scope="session")
def live_api(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(create_app(api_settings(database_url))).start()
    try:
        yield server
    finally:
        server.stop()
