"""The service on a real socket: Server-Sent Events, and ``mnemostore serve`` started as a user would start it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mnemostore import MnemoStore
from tests.fix_api import ADMIN_KEY, ApiTenant, LiveServer, admin_headers, free_port, make_tenant


@pytest.fixture
def live_tenant(live_api: LiveServer) -> Iterator[ApiTenant]:
    with httpx.Client(base_url=live_api.url, timeout=10) as client:
        yield make_tenant(client)


class EventReader:
    """Reads one SSE stream: frames as (id, event, data), comments as ("comment", text)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def next(self) -> dict[str, str]:
        frame: dict[str, str] = {}
        for line in self.lines:
            if line == "":
                if frame:
                    return frame
                continue
            field, _, value = line.partition(":")
            frame[field or "comment"] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    def next_event(self) -> dict[str, str]:
        while True:
            frame = self.next()
            if "event" in frame:
                return frame


def test_events_stream_messages_and_archive_and_resume(live_api: LiveServer, live_tenant: ApiTenant):
    t = live_tenant
    user = t.ok("POST", "/v1/users", 201, json={})
    conversation = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
    other = t.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
    cid = conversation["id"]
    url = f"{live_api.url}/v1/conversations/{cid}/events"
    timeout = httpx.Timeout(10, read=10)
    with httpx.Client(timeout=timeout) as client, client.stream("GET", url, headers=t.headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = EventReader(response)
        assert "subscribed" in events.next()["comment"]  # from here on nothing is missed
        t.ok("POST", f"/v1/conversations/{other['id']}/messages", 201, json={"role": "user", "content": "elsewhere"})
        t.ok("POST", f"/v1/conversations/{cid}/messages", 201, json={"role": "user", "content": "hello"})
        batch = {"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "bye"}]}
        t.ok("POST", f"/v1/conversations/{cid}/messages/batch", 201, json=batch)
        t.ok("POST", f"/v1/conversations/{cid}/archive")

        first, second, archived = events.next_event(), events.next_event(), events.next_event()
        assert first["event"] == "message.added"
        data = json.loads(first["data"])
        assert data["type"] == "message.added" and [m["content"] for m in data["data"]["messages"]] == ["hello"]
        assert [m["content"] for m in json.loads(second["data"])["data"]["messages"]] == ["hi", "bye"]
        assert archived["event"] == "conversation.archived" and "id" not in archived
        resume_from = first["id"]

    # Reconnecting with Last-Event-ID replays what came after it, from the database.
    headers = {**t.headers, "Last-Event-ID": resume_from}
    with httpx.Client(timeout=timeout) as client, client.stream("GET", url, headers=headers) as response:
        replay = EventReader(response).next_event()
        assert [m["content"] for m in json.loads(replay["data"])["data"]["messages"]] == ["hi", "bye"]
        assert replay["id"] != resume_from


def test_events_of_another_tenant_or_without_key(live_api: LiveServer, live_tenant: ApiTenant):
    with httpx.Client(base_url=live_api.url, timeout=10) as client:
        other = make_tenant(client)
        user = other.ok("POST", "/v1/users", 201, json={})
        conversation = other.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
        url = f"/v1/conversations/{conversation['id']}/events"
        assert live_tenant.call("GET", url).status_code == 404
        assert client.get(url).status_code == 401
        bad_cursor = other.call("GET", url, headers={"Last-Event-ID": "nonsense"})
        assert bad_cursor.status_code == 422


def _mnemostore() -> list[str]:
    script = Path(sys.executable).with_name("mnemostore")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from mnemostore.cli.main import main; main()"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMOSTORE_") and k != "DATABASE_URL"}
    return {**env, "MNEMOSTORE_ADMIN_API_KEY": ADMIN_KEY, "HOME": str(tmp_path), **extra}


@pytest.mark.slow
def test_serve_initialises_a_new_sqlite_file_and_serves(tmp_path: Path):
    port = free_port()
    database = tmp_path / "data" / "fresh.db"
    command = [*_mnemostore(), "--database-url", f"sqlite:///{database}", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)
        assert httpx.get(f"{base}/readyz").json()["ready"] is True
        created = httpx.post(f"{base}/v1/tenants", json={"name": "acme"}, headers=admin_headers())
        assert created.status_code == 201
        assert "mnemostore_http_requests_total" in httpx.get(f"{base}/metrics").text
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert "Initialised the new database" in out and f"http://127.0.0.1:{port}" in out
    log_lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(line["logger"] == "mnemostore.api.access" and line["route"] == "/v1/tenants" for line in log_lines)
    assert ADMIN_KEY not in err


def test_serve_refuses_a_database_that_is_behind_or_workers_without_redis(tmp_path: Path):
    database = tmp_path / "old.db"
    with MnemoStore(f"sqlite:///{database}") as store:
        store.migrate("0001")
    old = subprocess.run(
        [*_mnemostore(), "--database-url", f"sqlite:///{database}", "serve", "--port", str(free_port())],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert old.returncode == 1 and "mnemostore db upgrade" in old.stderr
    with MnemoStore(f"sqlite:///{database}") as store:
        assert store.get_migration_status().current == "0001"  # not migrated behind the user's back

    workers = subprocess.run(
        [*_mnemostore(), "--database-url", f"sqlite:///{database}", "serve", "--workers", "2"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert workers.returncode == 1 and "MNEMOSTORE_REDIS_URL" in workers.stderr
