"""``AsyncClient`` against the real service on a loopback port (``live_api``), on SQLite and PostgreSQL.

Each resource makes its round trip and comes back as the library's own objects (compared with what the store
returns for the same ids); error answers come back as the library's exceptions; listings are walked page by page;
the faults a network has (a connection dropped after the request was sent, a 503 of a proxy, a refused
connection, an event stream cut off) are injected by ``FaultyTransport`` in front of the real network, with the
client's waits recorded instead of slept. The client is checked against the app's ``/openapi.json``: a route
without a client method fails ``test_every_operation_of_the_service_has_a_client_method``.

(async; ``tests/test_client.py`` is generated from this file by ``tools/async_to_sync.py``.)
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mnemostore import (
    AsyncClient,
    AsyncMemoryClient,
    AsyncMnemoStore,
    AuthenticationError,
    BackendUnavailable,
    CheckpointNotFound,
    ConfigurationError,
    ConversationNotFound,
    ConversationStatus,
    DuplicateIdentity,
    InvalidCursor,
    InvalidInput,
    InvalidVector,
    KnowledgeChunkNotFound,
    MemoryKind,
    MemoryNotFound,
    MemoryTier,
    MessageNotFound,
    NewMessage,
    PermissionDenied,
    QuotaExceeded,
    Quotas,
    RateLimited,
    ReadOnlyKey,
    SearchMode,
    SearchResults,
    TenantAlreadyExists,
    TenantNotFound,
    TenantStatus,
    TenantSuspended,
    UserNotFound,
    VectorDimensionMismatch,
    VectorSearchUnavailable,
)
from mnemostore.api import create_app
from mnemostore.client import ENDPOINTS, endpoint_of
from tests.fix_api import ADMIN_KEY, LiveServer, api_settings, free_port

# -- fixtures and the faulty network ---------------------------------------------------------------------------


class Sleeps:
    """Records the client's waits instead of sleeping them; more than ``most`` of them fail the test (a client that
    would keep waiting)."""

    def __init__(self, most: int = 10) -> None:
        self.calls: list[float] = []
        self.most = most

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if len(self.calls) > self.most:
            raise AssertionError(f"the client kept waiting: {self.calls}")


class CutStream(httpx.AsyncByteStream):
    """An event stream that breaks off (like a dropped connection) once it has carried a ``message.added``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = b""
        async for chunk in self.inner:
            yield chunk
            seen += chunk
            if b"event: message.added" in seen and seen.endswith(b"\n\n"):
                raise httpx.ReadError("the connection dropped")

    async def aclose(self) -> None:
        await self.inner.aclose()


class FaultyTransport(httpx.AsyncBaseTransport):
    """The real network, with one-time faults: ``fail(method, path_end, fault)`` makes the next matching request
    ``drop`` (sent, answered, then the connection drops before the answer arrives), ``refuse`` (never sent),
    answer ``503`` in the service's place (as a proxy would, with ``Retry-After: 3``) or ``cut`` (an event stream
    that breaks off after its first message). Every request is kept in ``requests``."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []
        self.faults: list[tuple[str, str, str]] = []

    def fail(self, method: str, path_end: str, fault: str) -> None:
        self.faults.append((method, path_end, fault))

    def sent(self, method: str, path_end: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path.endswith(path_end)]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = None
        for planned in self.faults:
            method, path_end, kind = planned
            if request.method == method and request.url.path.endswith(path_end):
                self.faults.remove(planned)
                fault = kind
                break
        if fault == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "503":
            body = {"code": "backend_unavailable", "message": "upstream down", "request_id": "proxy"}
            return httpx.Response(503, headers={"Retry-After": "3"}, json=body)
        response = await self.inner.handle_async_request(request)
        if fault == "drop":
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("the connection dropped after the request was sent", request=request)
        if fault == "cut":
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                stream=CutStream(response.stream),
                extensions=response.extensions,
            )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Keys:
    tenant_id: uuid.UUID
    key: str
    read_only_key: str


def _name() -> str:
    return f"client-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def admin(live_api: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live_api.url, admin_key=ADMIN_KEY, timeout=20) as client:
        yield client


async def _tenant(admin: AsyncClient, **fields: Any) -> Keys:
    tenant = await admin.create_tenant(_name(), **fields)
    _, key = await admin.create_tenant_api_key(tenant.id, "rw")
    _, read_only = await admin.create_tenant_api_key(tenant.id, "ro", read_only=True)
    return Keys(tenant.id, key, read_only)


@pytest.fixture
async def keys(admin: AsyncClient) -> Keys:
    return await _tenant(admin)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def network() -> FaultyTransport:
    return FaultyTransport()


@pytest.fixture
async def client(
    live_api: LiveServer, keys: Keys, sleeps: Sleeps, network: FaultyTransport
) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live_api.url, api_key=keys.key, timeout=20, transport=network, sleep=sleeps) as c:
        yield c


# -- in step with the service ----------------------------------------------------------------------------------


def _declared(cls: type) -> dict[str, tuple[str, str] | None]:
    """Each public method of ``cls`` and the operation it declares (None: none)."""
    found: dict[str, tuple[str, str] | None] = {}
    for name in dir(cls):
        member = inspect.getattr_static(cls, name)
        if name.startswith("_") or isinstance(member, property) or not callable(getattr(cls, name)):
            continue
        endpoint = endpoint_of(getattr(cls, name))
        found[name] = endpoint.operation if endpoint is not None else None
    return found


def test_every_operation_of_the_service_has_a_client_method(tmp_path):
    app = create_app(api_settings(f"sqlite:///{tmp_path / 'openapi.db'}"))
    operations = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method != "parameters"
    }
    methods = {**_declared(AsyncClient), **{f"memory.{n}": op for n, op in _declared(AsyncMemoryClient).items()}}
    assert {name for name, op in methods.items() if op is None} == {"close"}  # every other method says what it calls
    assert {op for op in methods.values() if op is not None} == operations
    assert {endpoint.operation for endpoint in ENDPOINTS} == operations
    for endpoint in ENDPOINTS:  # what the client retries is what the service lets retry safely
        assert endpoint.retry == (
            endpoint.method == "GET"
            or (endpoint.method == "DELETE" and endpoint.path.endswith("}"))
            or (
                endpoint.method == "POST"
                and endpoint.path.endswith(("/search", "/context", "/messages", "/messages/batch"))
            )
        ), endpoint


async def test_keys_are_asked_for_before_anything_is_sent(live_api: LiveServer, network: FaultyTransport):
    async with AsyncClient(live_api.url, api_key="", admin_key="", transport=network) as client:
        with pytest.raises(ConfigurationError, match="admin_key"):
            await client.list_tenants()
        with pytest.raises(ConfigurationError, match="api_key"):
            await client.list_users()
        assert (await client.health()) == {"status": "ok"}  # the probes need no key
        assert (await client.readiness())["ready"] is True
    assert [r.url.path for r in network.requests] == ["/healthz", "/readyz"]


# -- round trips -----------------------------------------------------------------------------------------------


async def test_tenants_and_their_keys(admin: AsyncClient, live_api: LiveServer, astore: AsyncMnemoStore):
    name = _name()
    tenant = await admin.create_tenant(name, plan="pro", config={"tz": "UTC"}, quotas=Quotas(max_users=5))
    assert tenant == await astore.get_tenant(tenant.id)
    assert (tenant.name, tenant.plan, tenant.quotas.max_users, tenant.status) == (name, "pro", 5, TenantStatus.ACTIVE)
    with pytest.raises(TenantAlreadyExists) as taken:
        await admin.create_tenant(name)
    assert (taken.value.status, taken.value.code) == (409, "conflict")
    assert await admin.get_tenant(tenant.id) == tenant
    another = await admin.create_tenant(_name())
    walked = [t.id async for t in admin.iter_tenants(page_size=1)]
    assert walked.index(tenant.id) < walked.index(another.id) and len(walked) == len(set(walked))
    page = await admin.list_tenants(limit=1)
    assert len(page.items) == 1 and page.next_cursor is not None

    updated = await admin.update_tenant_config(tenant.id, plan="enterprise", quotas=Quotas(max_messages=10))
    assert (updated.plan, updated.quotas, updated.config) == ("enterprise", Quotas(max_messages=10), {"tz": "UTC"})
    assert updated == await astore.get_tenant(tenant.id)
    assert (await admin.get_tenant_usage(tenant.id)) == await astore.get_tenant_usage(tenant.id)

    key, secret = await admin.create_tenant_api_key(tenant.id, "bot", read_only=True)
    assert key.read_only and secret.startswith("mns_")
    listed = [k async for k in admin.iter_tenant_api_keys(tenant.id, page_size=1)]
    assert [k.id for k in listed] == [key.id] and listed == (await admin.list_tenant_api_keys(tenant.id)).items
    async with AsyncClient(live_api.url, api_key=secret) as bot:
        assert (await bot.list_users()).items == []
        impostor = AsyncClient(live_api.url, admin_key=secret)
        with pytest.raises(PermissionDenied) as lane:  # a tenant's key on the admin endpoints
            await impostor.list_tenants()
        assert lane.value.code == "forbidden"
        await impostor.close()
        await admin.revoke_tenant_api_key(tenant.id, key.id)
        with pytest.raises(AuthenticationError) as revoked:
            await bot.list_users()
        assert (revoked.value.status, revoked.value.code) == (401, "unauthorized")

    await admin.delete_tenant(tenant.id)
    with pytest.raises(TenantNotFound) as gone:
        await admin.get_tenant(tenant.id)
    assert gone.value.key == str(tenant.id) and gone.value.request_id


async def test_api_keys_of_the_tenant(client: AsyncClient, keys: Keys, live_api: LiveServer):
    key, secret = await client.create_api_key("ci", read_only=True)
    assert (key.tenant_id, key.name, key.read_only) == (keys.tenant_id, "ci", True)
    mine = [k async for k in client.iter_api_keys(page_size=1)]
    assert [k.name for k in mine] == ["rw", "ro", "ci"]
    assert [k.id for k in (await client.list_api_keys()).items] == [k.id for k in mine]
    await client.revoke_api_key(key.id)
    ci = AsyncClient(live_api.url, api_key=secret, retries=0)
    with pytest.raises(AuthenticationError):
        await ci.list_users()
    await ci.close()


async def test_users_and_identities(client: AsyncClient, keys: Keys, astore: AsyncMnemoStore):
    library = astore.tenant(keys.tenant_id)
    ada = await client.create_user(display_name="Ada", email="ada@example.com", preferences={"lang": "pt"})
    assert ada == await library.get_user(ada.id) == await client.get_user(ada.id)
    resolved = await client.get_or_create_user_by_identity("discord", "81", username="ada81", display_name="A")
    assert await client.get_or_create_user_by_identity("discord", "81") == resolved  # found, not made again
    assert resolved == await library.get_user_by_identity("discord", "81")

    updated = await client.update_user(ada.id, email=None, metadata={"vip": True})  # None clears; unpassed stay
    assert (updated.email, updated.display_name, updated.metadata) == (None, "Ada", {"vip": True})
    linked = await client.link_identity(ada.id, "telegram", "5", username="ada")
    assert await client.list_identities(ada.id) == [linked] == await library.list_identities(ada.id)
    with pytest.raises(DuplicateIdentity) as taken:
        await client.link_identity(resolved.id, "telegram", "5")
    assert taken.value.status == 409

    assert {u.id async for u in client.iter_users()} == {ada.id, resolved.id}
    await client.delete_user(ada.id)
    with pytest.raises(UserNotFound) as gone:
        await client.get_user(ada.id)
    assert (gone.value.status, gone.value.code, gone.value.key) == (404, "not_found", str(ada.id))


async def test_conversations_messages_and_checkpoints(client: AsyncClient, keys: Keys, astore: AsyncMnemoStore):
    library = astore.tenant(keys.tenant_id)
    user = await client.create_user()
    chat = await client.create_conversation(user.id, title="Lisbon", channel="web", metadata={"a": 1})
    assert chat == await library.get_conversation(chat.id) == await client.get_conversation(chat.id)

    first = await client.add_message(chat.id, role="user", content="Find me a hotel", metadata={"k": "v"})
    batch = await client.add_messages(
        chat.id,
        [
            NewMessage(role="assistant", content="Here are three", model="m", prompt_tokens=3),
            {"role": "user", "content": "ok"},
        ],
    )
    assert [m.seq for m in [first, *batch]] == [1, 2, 3]
    said = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    past = await client.add_message(chat.id, role="user", content="long ago", created_at=said)
    past_batch = await client.add_messages(chat.id, [NewMessage(role="user", content="also", created_at=said)])
    assert past.created_at == said == past_batch[0].created_at == (await library.get_message(past.id)).created_at  # type: ignore[union-attr]
    await client.delete_message(past.id)
    await client.delete_message(past_batch[0].id)
    assert await client.get_message(first.id) == first == await library.get_message(first.id)
    history = await client.get_conversation_history(chat.id, limit=2)
    assert history == await library.get_conversation_history(chat.id, limit=2)
    older = await client.get_conversation_history(chat.id, limit=2, before=history.before)
    assert [m.id for m in older.messages] == [first.id]
    assert await client.get_conversation_stats(chat.id) == await library.get_conversation_stats(chat.id)

    renamed = await client.update_conversation(chat.id, title=None, metadata={"b": 2})
    assert (renamed.title, renamed.channel, renamed.metadata) == (None, "web", {"b": 2})
    assert [c.id for c in (await client.list_conversations(user.id)).items] == [chat.id]
    assert chat.id in {c.id async for c in client.iter_conversations(page_size=1)}

    exported = await client.export_conversation(chat.id)
    original = await library.export_conversation(chat.id)  # the same document, as JSON
    assert exported["conversation"]["id"] == str(original["conversation"]["id"]) == str(chat.id)
    assert [(m["id"], m["content"]) for m in exported["messages"]] == [
        (str(m["id"]), m["content"]) for m in original["messages"]
    ]
    copy = await client.import_conversation(exported, new_ids=True)
    assert copy.id != chat.id and copy.message_count == 3
    archived = await client.archive_conversation(copy.id)
    assert archived.status is ConversationStatus.ARCHIVED
    assert [c.id for c in (await client.list_conversations(user.id, status="archived")).items] == [copy.id]

    assert await client.get_latest_checkpoint(chat.id) is None
    one = await client.create_checkpoint(chat.id, iteration=1, state={"step": "search"}, name="a")
    two = await client.create_checkpoint(chat.id, iteration=2, state={"step": "compare"})
    assert two.parent_id == one.id  # parent not passed: the latest
    root = await client.create_checkpoint(chat.id, iteration=3, state={}, parent_id=None)
    assert root.parent_id is None
    assert await client.get_latest_checkpoint(chat.id) == root
    assert await client.get_checkpoint_by_id(one.id) == one == await library.get_checkpoint_by_id(one.id)
    assert [c.id async for c in client.iter_checkpoints(chat.id, page_size=2)] == [root.id, two.id, one.id]
    with pytest.raises(CheckpointNotFound):
        await client.get_checkpoint_by_id(uuid.uuid4())

    await client.delete_message(first.id)
    with pytest.raises(MessageNotFound):
        await client.get_message(first.id)
    await client.delete_conversation(chat.id)
    with pytest.raises(ConversationNotFound) as gone:
        await client.get_conversation_history(chat.id)
    assert gone.value.key == str(chat.id)
    with pytest.raises(ConversationNotFound):
        await client.get_latest_checkpoint(chat.id)  # a missing conversation is not "no checkpoint yet"


async def test_memories_knowledge_and_search(client: AsyncClient, keys: Keys, astore: AsyncMnemoStore):
    library = astore.tenant(keys.tenant_id)
    user = await client.create_user()
    memory = await client.store_memory(
        "Ada is allergic to peanuts", user_id=user.id, kind=MemoryKind.PREFERENCE, tier="long_term", importance=0.9
    )
    assert memory == await library.get_memory(memory.id) == await client.get_memory(memory.id)
    other = await client.store_memory("Ada likes trains", user_id=user.id, tier=MemoryTier.LONG_TERM)
    assert [m.id async for m in client.iter_memories(user_id=user.id, page_size=1)] == [memory.id, other.id]
    assert (await client.retrieve_memories(tier="long_term", limit=1)).next_cursor is not None
    assert await client.get_memory_history(memory.id) == []

    chunk = await client.upsert_knowledge("handbook", "hotels#1", "Hotels up to 180 EUR a night", title="Hotels")
    assert chunk == await library.get_knowledge_chunk(chunk.id) == await client.get_knowledge_chunk(chunk.id)
    assert (
        await client.upsert_knowledge("handbook", "hotels#1", "Hotels up to 180 EUR a night", title="Hotels") == chunk
    )
    bulk = await client.upsert_knowledge_chunks(
        "handbook",
        [{"external_id": "trains#1", "content": "Book trains under 4 hours"}, {"external_id": "x", "content": "y"}],
    )
    assert [c.external_id async for c in client.iter_knowledge("handbook", page_size=2)] == [
        "hotels#1",
        "trains#1",
        "x",
    ]
    assert (await client.list_knowledge("handbook", limit=10)).items == [
        chunk,
        *sorted(bulk, key=lambda c: c.external_id),
    ]

    found = await client.search("peanuts", mode="fulltext", kinds=["memories"], user_id=user.id)
    assert isinstance(found, SearchResults) and found.mode is SearchMode.FULLTEXT
    assert [h.id for h in found] == [memory.id]
    same = await library.search("peanuts", mode="fulltext", kinds=["memories"], user_id=user.id)
    assert [(h.id, h.kind, h.score, h.content) for h in found] == [(h.id, h.kind, h.score, h.content) for h in same]
    everywhere = await client.search("hotels trains", mode=SearchMode.FULLTEXT)
    assert {h.kind.value for h in everywhere} == {"knowledge", "memories"}
    assert {chunk.id, bulk[0].id, other.id} == {h.id for h in everywhere}
    knowledge = await client.search_knowledge("hotels", mode="fulltext", since=datetime(2020, 1, 1, tzinfo=UTC))
    assert [h.id for h in knowledge] == [chunk.id]
    with pytest.raises(InvalidInput, match="one kind or all three"):
        await client.search("x", kinds=["messages", "memories"])
    with pytest.raises(InvalidInput, match="one kind or all three"):
        await client.search("x", kinds=["graph_items"])

    await client.delete_memory(memory.id)
    with pytest.raises(MemoryNotFound):
        await client.get_memory(memory.id)
    await client.delete_knowledge_chunk(chunk.id)
    with pytest.raises(KnowledgeChunkNotFound):
        await client.get_knowledge_chunk(chunk.id)


async def test_memories_of_a_conversation_and_caller_vectors(
    client: AsyncClient, keys: Keys, astore: AsyncMnemoStore, backend: str
):
    user = await client.create_user()
    chat = await client.create_conversation(user.id)
    kept = await client.store_memory("Ada's flight lands at nine", conversation_id=chat.id)
    assert (kept.user_id, kept.conversation_id) == (user.id, chat.id)
    await client.store_memory("Ada takes the train home", user_id=user.id)
    assert [m.id for m in (await client.retrieve_memories(conversation_id=chat.id)).items] == [kept.id]
    ranked = await client.retrieve_memories(user_id=user.id, query="flight nine")
    assert ranked.items[0].id == kept.id and ranked.next_cursor is None

    vector = [1.0, 0.0, 0.5]
    if backend == "postgres":  # the system PostgreSQL has no pgvector: 501, as the library raises
        with pytest.raises(VectorSearchUnavailable):
            await client.store_memory("theirs", user_id=user.id, vector=vector, model="their-3")
        return
    theirs = await client.store_memory("theirs", user_id=user.id, vector=vector, model="their-3")
    chunk = await client.upsert_knowledge("h", "1", "a chunk", vector=[0.0, 1.0, 0.0], model="their-3")
    found = await client.search(vector=[1.0, 0.0, 0.4], model="their-3", kinds=["memories"])
    assert found.mode is SearchMode.SEMANTIC and [h.id for h in found] == [theirs.id]
    similar = await client.search_similar_memories(embedding_vector=vector, model="their-3", threshold=0.99)
    assert [h.id for h in similar] == [theirs.id]
    assert [h.id for h in await client.search(vector=[0.0, 1.0, 0.1], model="their-3", kinds=["knowledge"])] == [
        chunk.id
    ]
    with pytest.raises(VectorDimensionMismatch):
        await client.search(vector=[1.0, 0.0], model="their-3")
    with pytest.raises(InvalidVector, match="finite"):  # JSON cannot carry it: refused before sending
        await client.store_memory("nan", vector=[float("nan"), 1.0], model="their-3")
    said = await client.add_message(chat.id, role="user", content="x", vector=[0.0, 1.0, 1.0], vector_model="their-3")
    batch = await client.add_messages(
        chat.id, [NewMessage(role="user", content="y", vector=[0.0, -1.0, 1.0], vector_model="their-3")]
    )
    by_vector = await client.search(vector=[0.0, 1.0, 0.9], model="their-3", kinds=["messages"], limit=2)
    assert [h.id for h in by_vector] == [said.id, batch[0].id]
    # A new vector through the update route moves the memory in the caller's space.
    await client.update_memory(theirs.id, vector=[0.0, 0.0, 1.0], model="their-3")
    moved = await client.search(vector=[0.0, 0.1, 1.0], model="their-3", kinds=["memories"], limit=1)
    assert [h.id for h in moved] == [theirs.id] and moved[0].scores["semantic"] > 0.99


async def test_agent_records(client: AsyncClient, keys: Keys, astore: AsyncMnemoStore):
    library = astore.tenant(keys.tenant_id)
    chat = await client.create_conversation((await client.create_user()).id)
    run = await client.record_tool_execution(
        "hotel_search", conversation_id=chat.id, parameters={"area": "Alfama"}, result={"hits": 3}, duration_ms=240.5
    )
    failed = await client.record_tool_execution("pay", success=False, error="declined")
    assert [t.id async for t in client.iter_tool_executions(page_size=1)] == [failed.id, run.id]
    assert (await client.list_tool_executions(tool="hotel_search")).items == [run]
    assert (await library.list_tool_executions(conversation_id=chat.id)).items == [run]

    event = await client.record_interaction_event("approval", conversation_id=chat.id, data={"ok": True})
    assert [e async for e in client.iter_interaction_events(conversation_id=chat.id)] == [event]

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    one = await client.record_metric("latency_ms", 812, conversation_id=chat.id, labels={"m": "a"}, recorded_at=at)
    assert (one.value, one.recorded_at, one.labels) == (812.0, at, {"m": "a"})
    more = await client.record_metrics([{"metric_type": "tokens", "value": 96}, {"metric_type": "tokens", "value": 4}])
    walked = [m async for m in client.iter_metrics(metric_type="tokens", page_size=1)]
    assert len(walked) == 2 and sorted(m.id for m in walked) == sorted(m.id for m in more)
    assert (await client.query_metrics(conversation_id=chat.id)).items == [one]


async def test_the_three_line_memory_api(client: AsyncClient):
    memory = client.memory
    facts = await memory.add("I'm vegetarian", user_id="alice", metadata={"src": "chat"})
    chat = await memory.add(
        [{"role": "user", "content": "I just moved to Berlin"}, NewMessage(role="assistant", content="Welcome!")],
        user_id="alice",
    )
    assert [m.content for m in chat] == ["I just moved to Berlin"]  # what the user said
    hits = await memory.search("vegetarian", user_id="alice", mode="fulltext")
    assert [h.id for h in hits] == [facts[0].id] and hits.mode is SearchMode.FULLTEXT
    assert await memory.search("vegetarian", user_id="nobody") == []
    # The search recalled it: the same memory, with that recall counted.
    got = await memory.get(facts[0].id)
    assert got == dataclasses.replace(facts[0], recall_count=1, last_recalled_at=got.last_recalled_at)
    assert await memory.get(uuid.uuid4()) is None
    assert {m.id async for m in memory.iter_all(user_id="alice", page_size=1)} == {facts[0].id, chat[0].id}
    assert (await memory.get_all(user_id="alice", limit=1)).next_cursor is not None

    changed = await memory.update(facts[0].id, "I'm vegan since 2026")
    assert changed.content == "I'm vegan since 2026"
    assert [v.content for v in await memory.history(facts[0].id)] == ["I'm vegetarian"]
    await memory.delete(facts[0].id)
    with pytest.raises(MemoryNotFound):
        await memory.history(facts[0].id)
    assert await memory.delete_all(user_id="alice") == 1
    assert (await memory.get_all(user_id="alice")).items == []


async def test_the_memory_api_takes_a_conversation_a_query_and_vectors(client: AsyncClient, backend: str):
    memory = client.memory
    chat = await memory.add([{"role": "user", "content": "I just moved to Berlin"}], user_id="bob")
    await memory.add("I'm allergic to cats", user_id="bob")
    of_chat = await memory.get_all(user_id="bob", conversation_id=chat[0].conversation_id)
    assert chat[0].conversation_id is not None and [m.id for m in of_chat.items] == [chat[0].id]
    ranked = await memory.get_all(user_id="bob", query="allergic cats")
    assert ranked.items[0].content == "I'm allergic to cats" and ranked.next_cursor is None
    if backend == "postgres":  # the system PostgreSQL has no pgvector for caller vectors
        return
    theirs = await memory.add("I fly on Fridays", user_id="bob", vector=[1.0, 0.0, 0.2], model="their-3")
    found = await memory.search(vector=[1.0, 0.0, 0.3], model="their-3", user_id="bob")
    assert [h.id for h in found] == [theirs[0].id] and found[0].scores["semantic"] > 0.99


# -- pagination ------------------------------------------------------------------------------------------------


async def test_iterators_visit_each_item_once_a_page_at_a_time(client: AsyncClient, network: FaultyTransport):
    made = [(await client.create_user(external_id=f"u{i}")).id for i in range(7)]
    walked = [u.id async for u in client.iter_users(page_size=2)]
    assert walked == made  # oldest first, each once
    assert len(network.sent("GET", "/v1/users")) == 4  # 2 + 2 + 2 + 1

    chat = await client.create_conversation(made[0])
    sent = await client.add_messages(chat.id, [{"role": "user", "content": f"m{i}"} for i in range(8)])
    history = [m.id async for m in client.iter_history(chat.id, page_size=3)]
    assert history == [m.id for m in reversed(sent)]  # newest first, each once


# -- errors ----------------------------------------------------------------------------------------------------


async def test_error_answers_are_the_library_exceptions(client: AsyncClient, keys: Keys, live_api: LiveServer):
    with pytest.raises(ConversationNotFound) as missing:
        await client.get_conversation(uuid.uuid4())
    assert missing.value.status == 404 and missing.value.request_id and "not found" in str(missing.value)
    with pytest.raises(UserNotFound):  # the class of what is missing, not of the route
        await client.create_conversation(uuid.uuid4())

    with pytest.raises(InvalidInput) as invalid:
        await client.create_user(email="a\x00b", display_name="x" * 201)
    assert (invalid.value.status, invalid.value.code) == (422, "validation_error")
    assert {f["field"] for f in invalid.value.fields or []} == {"body.email", "body.display_name"}
    with pytest.raises(InvalidCursor) as cursor:
        await client.list_users(cursor="not-a-cursor")
    assert (cursor.value.code, cursor.value.fields) == ("invalid_input", None)

    async with AsyncClient(live_api.url, api_key=keys.read_only_key) as reader:
        assert (await reader.list_users()).items == []
        with pytest.raises(ReadOnlyKey) as read_only:
            await reader.create_user()
        assert (read_only.value.status, read_only.value.code) == (403, "read_only_key")

    stranger = AsyncClient(live_api.url, api_key="mns_nope_nope")
    with pytest.raises(AuthenticationError):
        await stranger.list_users()
    await stranger.close()


async def test_quota_and_suspension(admin: AsyncClient, live_api: LiveServer):
    small = await _tenant(admin, quotas=Quotas(max_users=1))
    async with AsyncClient(live_api.url, api_key=small.key) as client:
        await client.create_user()
        with pytest.raises(QuotaExceeded) as full:
            await client.create_user()
        assert (full.value.status, full.value.quota, full.value.limit) == (403, "max_users", 1)
        await admin.update_tenant_config(small.tenant_id, status="suspended")
        with pytest.raises(TenantSuspended) as suspended:
            await client.list_users()
        assert isinstance(suspended.value, PermissionDenied) and suspended.value.code == "tenant_suspended"


async def test_rate_limited_is_retried_after_its_retry_after_then_raised(
    admin: AsyncClient, live_api: LiveServer, sleeps: Sleeps
):
    limited = await _tenant(admin, config={"rate_limits": {"api_key": "2/minute"}})
    async with AsyncClient(live_api.url, api_key=limited.key, retries=2, backoff=0.25, sleep=sleeps) as client:
        await client.list_users()
        await client.list_users()
        with pytest.raises(RateLimited) as limit:
            await client.list_users()  # a read: tried 3 times, waiting what Retry-After says each time
        error = limit.value
        assert (error.status, error.code, error.scope, error.limit, error.window) == (
            429,
            "rate_limited",
            "api_key",
            2,
            60,
        )
        assert 1 <= error.retry_after <= 60
        assert len(sleeps.calls) == 2 and all(error.retry_after <= s <= 60 for s in sleeps.calls)
        with pytest.raises(RateLimited):
            await client.create_user()  # a write that is not an append: never sent again
        assert len(sleeps.calls) == 2
    async with AsyncClient(live_api.url, api_key=limited.key, retries=2, max_retry_after=0.5, sleep=sleeps) as client:
        with pytest.raises(RateLimited):
            await client.list_users()  # Retry-After is longer than max_retry_after: raised at once
        assert len(sleeps.calls) == 2


# -- retries ---------------------------------------------------------------------------------------------------


async def test_an_append_whose_answer_was_lost_is_sent_again_and_stored_once(
    client: AsyncClient, network: FaultyTransport, sleeps: Sleeps, keys: Keys, astore: AsyncMnemoStore
):
    chat = await client.create_conversation((await client.create_user()).id)
    network.fail("POST", "/messages", "drop")
    message = await client.add_message(chat.id, role="user", content="only once")
    attempts = network.sent("POST", "/messages")
    assert len(attempts) == 2 and sleeps.calls == [0.5]
    assert attempts[0].headers["Idempotency-Key"] == attempts[1].headers["Idempotency-Key"]
    network.fail("POST", "/messages/batch", "drop")
    batch = await client.add_messages(
        chat.id, [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]
    )
    assert len(network.sent("POST", "/messages/batch")) == 2
    stored = (await astore.tenant(keys.tenant_id).get_conversation_history(chat.id)).messages
    assert [m.id for m in stored] == [message.id, *(m.id for m in batch)]
    assert [m.content for m in stored] == ["only once", "a", "b"]

    mine = await client.add_message(chat.id, role="user", content="keyed", idempotency_key="evt-1")
    assert await client.add_message(chat.id, role="user", content="keyed", idempotency_key="evt-1") == mine


async def test_other_writes_are_sent_once(client: AsyncClient, network: FaultyTransport, sleeps: Sleeps):
    user = await client.create_user()
    network.fail("POST", "/v1/conversations", "drop")
    with pytest.raises(BackendUnavailable, match="may have been carried out"):
        await client.create_conversation(user.id, title="once")
    assert len(network.sent("POST", "/v1/conversations")) == 1 and sleeps.calls == []
    assert [c.title for c in (await client.list_conversations(user.id)).items] == ["once"]  # it was
    network.fail("POST", "/v1/users", "503")
    with pytest.raises(BackendUnavailable) as proxy:
        await client.create_user()
    assert proxy.value.status == 503 and len(network.sent("POST", "/v1/users")) == 2  # 1 + the first create_user


async def test_reads_and_deletes_are_sent_again(client: AsyncClient, network: FaultyTransport, sleeps: Sleeps):
    user = await client.create_user()
    network.fail("GET", f"/v1/users/{user.id}", "503")
    network.fail("GET", f"/v1/users/{user.id}", "refuse")
    assert await client.get_user(user.id) == user
    assert sleeps.calls == [3.0, 1.0]  # Retry-After: 3 (longer than the backoff), then the doubled backoff
    network.fail("DELETE", f"/v1/users/{user.id}", "drop")
    await client.delete_user(user.id)  # deleted by the first attempt; the second finds nothing: done
    assert len(network.sent("DELETE", f"/v1/users/{user.id}")) == 2
    with pytest.raises(UserNotFound):
        await client.delete_user(user.id)  # without a lost answer, a 404 is a 404


async def test_a_service_that_does_not_answer_is_backend_unavailable(sleeps: Sleeps):
    nobody = AsyncClient(f"http://127.0.0.1:{free_port()}", api_key="k", retries=3, backoff=0.5, sleep=sleeps)
    with pytest.raises(BackendUnavailable, match="nothing reached it"):
        await nobody.list_users()
    await nobody.close()
    assert sleeps.calls == [0.5, 1.0, 2.0]


# -- events ----------------------------------------------------------------------------------------------------
# A read timeout below the service's 15 s keep-alive: an event that does not come fails the test in 5 s.


async def test_events_deliver_what_is_appended_after_subscribing(client: AsyncClient):
    chat = await client.create_conversation((await client.create_user()).id)
    other = await client.create_conversation(chat.user_id)
    async with client.events(chat.id, reconnect=False, read_timeout=5) as events:
        await client.add_message(other.id, role="user", content="elsewhere")
        hello = await client.add_message(chat.id, role="user", content="hello")
        pair = await client.add_messages(
            chat.id, [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "?"}]
        )
        await client.archive_conversation(chat.id)
        first, second, archived = await anext(events), await anext(events), await anext(events)
    assert (first.type, first.conversation_id, first.messages) == ("message.added", chat.id, [hello])
    assert second.messages == pair and second.id is not None and events.last_event_id == second.id
    assert (archived.type, archived.id, archived.messages) == ("conversation.archived", None, [])

    async with client.events(chat.id, last_event_id=first.id, reconnect=False, read_timeout=5) as resumed:
        replay = await anext(resumed)  # what came after ``first``, from the database
    assert replay.messages == pair


async def test_events_reconnect_where_the_stream_broke_off(
    client: AsyncClient, network: FaultyTransport, sleeps: Sleeps
):
    chat = await client.create_conversation((await client.create_user()).id)
    network.fail("GET", "/events", "cut")
    sleeps.most = 1  # one reconnection
    async with client.events(chat.id, read_timeout=5) as events:
        one = await client.add_message(chat.id, role="user", content="one")
        first = await anext(events)
        assert first.messages == [one]
        two = await client.add_message(chat.id, role="user", content="two")  # sent while the stream is cut
        assert (await anext(events)).messages == [two]  # replayed after reconnecting, once
        three = await client.add_message(chat.id, role="user", content="three")
        assert (await anext(events)).messages == [three]
    assert events.connections == 2 and sleeps.calls == [2.0]  # the service's ``retry: 2000``
    assert network.sent("GET", "/events")[1].headers["Last-Event-ID"] == first.id


async def test_events_of_a_missing_conversation(client: AsyncClient):
    events = client.events(uuid.uuid4())
    with pytest.raises(ConversationNotFound):
        await events.open()
    await events.close()
