"""The MCP server, through the official SDK's own client, on both backends and both transports.

* stdio: ``mcp.ClientSession`` over ``mcp.client.stdio.stdio_client`` spawning ``python -m mnemostore
  --database-url … mcp --tenant …``, a real process on the session's database;
* streamable HTTP: the same client over ``mcp.client.streamable_http.streamable_http_client`` against ``/mcp``
  of the real app served by uvicorn on loopback (``live_api``), with tenant API keys made through the admin API.

Every tool is called and its result checked against what the store holds; the errors a caller can cause (not
found, invalid input, quota, a read-only key writing) come back as tool errors (``isError``, the store's message)
on a session that keeps working; a read-only key cannot write, and tenant B's key never sees tenant A's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from mnemostore import MnemoStore, Quotas
from mnemostore.errors import ConversationNotFound, MemoryNotFound
from tests.fix_api import ApiTenant, LiveServer, admin_headers, make_tenant

ROOT = Path(__file__).resolve().parent.parent
CALL_TIMEOUT = 60  # seconds a whole session may take: a hung server fails the test instead of the run

READ_TOOLS = {
    "search_memories",
    "list_memories",
    "get_memory",
    "memory_history",
    "get_recent_messages",
    "build_context",
    "list_conversations",
    "search_knowledge",
}
WRITE_TOOLS = {"add_memory", "update_memory", "delete_memory", "start_conversation", "add_message"}

# Arguments that would succeed for a writer, to show a read-only caller is refused before anything runs.
WRITE_CALLS: dict[str, dict[str, Any]] = {
    "add_memory": {"user_id": "alice", "content": "Alice collects stamps"},
    "update_memory": {"memory_id": str(uuid.uuid4()), "content": "changed"},
    "delete_memory": {"memory_id": str(uuid.uuid4())},
    "start_conversation": {"user_id": "alice"},
    "add_message": {"conversation_id": str(uuid.uuid4()), "role": "user", "content": "hello"},
}


# -- clients ---------------------------------------------------------------------------------------------------


def server_env() -> dict[str, str]:
    """The server process's environment: this tree first on the path, and the suite's MNEMOSTORE_* settings
    (test embedder, small pools); the SDK adds HOME, PATH and the like."""
    env = {name: value for name, value in os.environ.items() if name.startswith("MNEMOSTORE_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def mcp_command(database_url: str, *args: str) -> list[str]:
    return ["-m", "mnemostore", "--database-url", database_url, "mcp", *args]


@asynccontextmanager
async def stdio_session(database_url: str, *args: str, errlog: TextIO) -> AsyncIterator[ClientSession]:
    """An initialised SDK client session with ``mnemostore mcp ARGS`` spawned on ``database_url``."""
    params = StdioServerParameters(
        command=sys.executable, args=mcp_command(database_url, *args), env=server_env(), cwd=str(ROOT)
    )
    with anyio.fail_after(CALL_TIMEOUT):
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(server: LiveServer, key: str) -> AsyncIterator[ClientSession]:
    """An initialised SDK client session on ``/mcp`` of the live service, authenticated with ``key``."""
    headers = {"Authorization": f"Bearer {key}"}
    with anyio.fail_after(CALL_TIMEOUT):
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def ok(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, (tool, text_of(result))
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def fails(session: ClientSession, tool: str, **arguments: Any) -> str:
    """Call a tool that must answer a tool error (not a protocol error); its message."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, (tool, result.structured_content)
    return text_of(result)


# -- what both transports must do ------------------------------------------------------------------------------


async def check_tool_list(session: ClientSession) -> None:
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == READ_TOOLS | WRITE_TOOLS
    for name, tool in tools.items():
        assert tool.description and len(tool.description) > 40, name
        assert tool.input_schema["type"] == "object" and tool.input_schema["additionalProperties"] is False, name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object", name
        assert tool.annotations is not None and tool.annotations.read_only_hint is (name in READ_TOOLS), name
    assert tools["delete_memory"].annotations is not None and tools["delete_memory"].annotations.destructive_hint
    assert tools["add_memory"].input_schema["required"] == ["user_id", "content"]
    assert tools["add_message"].input_schema["properties"]["role"]["enum"] == ["user", "assistant", "system", "tool"]


async def check_memory_tools(session: ClientSession) -> None:
    veg = await ok(session, "add_memory", user_id="alice", content="Alice is vegetarian", importance=0.9)
    assert (veg["content"], veg["importance"], veg["kind"]) == ("Alice is vegetarian", 0.9, "fact")
    lisbon = await ok(session, "add_memory", user_id="alice", content="Alice lives in Lisbon", metadata={"k": 1})
    assert lisbon["metadata"] == {"k": 1}
    cello = await ok(session, "add_memory", user_id="bob", content="Bob is vegetarian too", agent_id="coach")

    found = await ok(session, "search_memories", user_id="alice", query="vegetarian")
    assert found["hits"][0]["id"] == veg["id"] and found["mode"] in {"hybrid", "fulltext"}
    assert cello["id"] not in {hit["id"] for hit in found["hits"]}  # Bob's, though it matches as well
    bobs = await ok(session, "search_memories", user_id="bob", query="vegetarian", agent_id="coach")
    assert [hit["id"] for hit in bobs["hits"]] == [cello["id"]]
    nobody = await ok(session, "search_memories", user_id="nobody", query="vegetarian")
    assert nobody["hits"] == []

    first = await ok(session, "list_memories", user_id="alice", limit=1)
    assert [m["id"] for m in first["memories"]] == [veg["id"]]  # most important first
    assert first["next_cursor"] is not None
    rest = await ok(session, "list_memories", user_id="alice", limit=1, cursor=first["next_cursor"])
    assert [m["id"] for m in rest["memories"]] == [lisbon["id"]] and rest["next_cursor"] is None

    assert (await ok(session, "get_memory", memory_id=veg["id"]))["content"] == "Alice is vegetarian"
    updated = await ok(session, "update_memory", memory_id=veg["id"], content="Alice is vegan since May")
    assert updated["id"] == veg["id"] and updated["content"] == "Alice is vegan since May"
    assert (await ok(session, "get_memory", memory_id=veg["id"]))["content"] == "Alice is vegan since May"
    history = await ok(session, "memory_history", memory_id=veg["id"])
    assert [v["content"] for v in history["versions"]] == ["Alice is vegetarian"]

    assert await ok(session, "delete_memory", memory_id=lisbon["id"]) == {"id": lisbon["id"], "deleted": True}
    gone = str(MemoryNotFound(uuid.UUID(lisbon["id"])))
    assert gone in await fails(session, "get_memory", memory_id=lisbon["id"])
    assert gone in await fails(session, "delete_memory", memory_id=lisbon["id"])
    assert gone in await fails(session, "memory_history", memory_id=lisbon["id"])
    remaining = await ok(session, "list_memories", user_id="alice")
    assert [m["id"] for m in remaining["memories"]] == [veg["id"]]


async def check_conversation_tools(session: ClientSession) -> None:
    chat = await ok(session, "start_conversation", user_id="alice", title="Lisbon trip", external_id="thread-1")
    assert (chat["user_id"], chat["title"], chat["external_id"], chat["message_count"]) == (
        "alice",
        "Lisbon trip",
        "thread-1",
        0,
    )
    again = await ok(session, "start_conversation", user_id="alice", external_id="thread-1")
    assert again["id"] == chat["id"]  # found again by the caller's own key
    other = await ok(session, "start_conversation", user_id="alice")
    assert other["id"] != chat["id"]
    taken = await fails(session, "start_conversation", user_id="bob", external_id="thread-1")
    assert "another user's conversation" in taken

    asked = await ok(
        session, "add_message", conversation_id=chat["id"], role="user", content="Find a hotel", idempotency_key="e1"
    )
    assert (asked["seq"], asked["role"], asked["content"]) == (1, "user", "Find a hotel")
    retry = await ok(
        session, "add_message", conversation_id=chat["id"], role="user", content="Find a hotel", idempotency_key="e1"
    )
    assert retry["id"] == asked["id"]  # a retried append is not stored twice
    answer = await ok(session, "add_message", conversation_id=chat["id"], role="assistant", content="Try Alfama")
    assert answer["seq"] == 2

    newest = await ok(session, "get_recent_messages", conversation_id=chat["id"], limit=1)
    assert [m["id"] for m in newest["messages"]] == [answer["id"]] and newest["before"] is not None
    older = await ok(session, "get_recent_messages", conversation_id=chat["id"], limit=5, before=newest["before"])
    assert [m["content"] for m in older["messages"]] == ["Find a hotel"] and older["before"] is None
    both = await ok(session, "get_recent_messages", conversation_id=chat["id"])
    assert [m["role"] for m in both["messages"]] == ["user", "assistant"]

    block = await ok(session, "build_context", conversation_id=chat["id"], max_tokens=500)
    assert block["query"] == "Find a hotel"  # the newest user message
    assert block["text"].endswith("## Recent messages\nuser: Find a hotel\nassistant: Try Alfama")
    assert block["tokens"] <= block["max_tokens"] == 500 and block["included"]["messages"] == 2
    tight = await ok(session, "build_context", conversation_id=chat["id"], query="hotel", max_tokens=12)
    assert tight["text"] == "## Recent messages\nassistant: Try Alfama" and tight["omitted"]["messages"] == 1
    assert "cannot hold even a section header" in await fails(
        session, "build_context", conversation_id=chat["id"], max_tokens=1
    )

    listed = await ok(session, "list_conversations", user_id="alice")
    assert {c["id"] for c in listed["conversations"]} == {chat["id"], other["id"]}
    assert listed["conversations"][0]["id"] == chat["id"]  # most recently active first
    assert (await ok(session, "list_conversations", user_id="nobody"))["conversations"] == []

    missing = uuid.uuid4()
    absent = str(ConversationNotFound(missing))
    assert absent in await fails(session, "add_message", conversation_id=str(missing), role="user", content="x")
    assert absent in await fails(session, "get_recent_messages", conversation_id=str(missing))
    assert absent in await fails(session, "build_context", conversation_id=str(missing))


async def check_knowledge_tool(session: ClientSession) -> None:
    found = await ok(session, "search_knowledge", query="hotel night approved")
    assert [(h["source"], h["title"]) for h in found["hits"]] == [("handbook", "Travel policy")]
    assert "180 EUR" in found["hits"][0]["content"]


async def check_caller_errors(session: ClientSession) -> None:
    """Invalid input, from the schema and from the store, answers a tool error; the session goes on."""
    nul = await fails(session, "add_memory", user_id="alice", content="bad \x00 byte")
    assert "NUL byte" in nul
    assert "invalid arguments for add_memory: content:" in await fails(session, "add_memory", user_id="alice")
    typo = await fails(session, "add_memory", user_id="alice", content="x", importnace=1)
    assert "importnace: Extra inputs are not permitted" in typo
    assert "memory_id:" in await fails(session, "get_memory", memory_id="not-a-uuid")
    assert "limit:" in await fails(session, "search_knowledge", query="hotel", limit=0)
    blank = await fails(session, "search_memories", user_id="  ", query="x")
    assert blank.startswith("invalid arguments for search_memories: user_id:")
    cursor = await fails(session, "list_memories", user_id="alice", cursor="garbage")
    assert "cursor" in cursor
    unknown = await fails(session, "teleport")
    assert unknown.startswith("there is no tool 'teleport'")
    await ok(session, "list_memories", user_id="alice")  # still serving


async def check_read_only(session: ClientSession) -> None:
    """Every write tool is refused before it runs; every read tool answers."""
    for name, arguments in WRITE_CALLS.items():
        refused = await fails(session, name, **arguments)
        assert refused.startswith(f"{name} writes, and this API key is read-only"), refused
    assert (await ok(session, "list_memories", user_id="alice"))["memories"] == []
    await ok(session, "search_memories", user_id="alice", query="stamps")
    await ok(session, "search_knowledge", query="hotel")


# -- stdio -----------------------------------------------------------------------------------------------------


def new_tenant(store: MnemoStore, *, quotas: Quotas | None = None) -> str:
    """A new tenant with the travel handbook in its knowledge; its name."""
    name = f"mcp-{uuid.uuid4().hex[:12]}"
    tenant = store.create_tenant(name, quotas=quotas)
    store.tenant(tenant.id).upsert_knowledge(
        "handbook", "travel#3", "Hotels up to 180 EUR a night are approved.", title="Travel policy"
    )
    return name


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[TextIO]:
    with (tmp_path / "server-stderr.txt").open("w+") as log:
        yield log


async def test_stdio_every_tool(database_url: str, store: MnemoStore, errlog: TextIO) -> None:
    name = new_tenant(store)
    async with stdio_session(database_url, "--tenant", name, errlog=errlog) as session:
        await check_tool_list(session)
        await check_memory_tools(session)
        await check_conversation_tools(session)
        await check_knowledge_tool(session)
        await check_caller_errors(session)
    tenant = store.tenant(name)
    alice = tenant.get_user_by_external_id("alice")
    assert alice is not None  # the tools wrote to the tenant named on the command line, as the caller's user ids
    assert [m.content for m in tenant.retrieve_memories(user_id=alice.id).items] == ["Alice is vegan since May"]


async def test_stdio_tenant_by_id_and_read_only(database_url: str, store: MnemoStore, errlog: TextIO) -> None:
    tenant_id = store.get_tenant_by_name(new_tenant(store))
    assert tenant_id is not None
    async with stdio_session(database_url, "--tenant", str(tenant_id.id), "--read-only", errlog=errlog) as session:
        await check_read_only(session)
    assert store.tenant(tenant_id.id).get_user_by_external_id("alice") is None  # nothing was written


async def test_stdio_quota_is_a_tool_error(database_url: str, store: MnemoStore, errlog: TextIO) -> None:
    name = new_tenant(store, quotas=Quotas(max_users=1))
    async with stdio_session(database_url, "--tenant", name, errlog=errlog) as session:
        await ok(session, "add_memory", user_id="alice", content="Alice likes jazz")
        over = await fails(session, "add_memory", user_id="bob", content="Bob likes jazz")
        assert "has reached its max_users quota (1)" in over
        await ok(session, "add_memory", user_id="alice", content="Alice plays the piano")


async def test_stdio_creates_a_tenant_named_for_the_first_time(
    database_url: str, store: MnemoStore, errlog: TextIO
) -> None:
    name = f"mcp-new-{uuid.uuid4().hex[:8]}"
    async with stdio_session(database_url, "--tenant", name, errlog=errlog) as session:
        await ok(session, "add_memory", user_id="alice", content="Alice is new here")
    errlog.seek(0)
    assert f"Created the tenant {name!r}" in errlog.read()
    assert store.get_tenant_by_name(name) is not None


def test_stdio_refuses_an_unknown_tenant_id(database_url: str) -> None:
    missing = str(uuid.uuid4())
    run = subprocess.run(
        [sys.executable, *mcp_command(database_url, "--tenant", missing)],
        env={**os.environ, **server_env()},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=False,
    )
    assert run.returncode == 1 and run.stdout == ""
    assert f"error: tenant {missing} not found: give a tenant id or name" in run.stderr


def without_the_sdk(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import mcp`` fails as it does when the package is not installed (a stub first on
    the path)."""
    stub = tmp_path / "stub" / "mcp"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ModuleNotFoundError('No module named mcp', name='mcp')\n")
    return {**os.environ, "PYTHONPATH": f"{tmp_path / 'stub'}{os.pathsep}{ROOT}"}


def test_cli_without_the_sdk_names_the_extra(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, *mcp_command(f"sqlite:///{tmp_path / 'x.db'}")],
        env=without_the_sdk(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert "pip install 'mnemostore[mcp]'" in run.stderr.replace("\n", "")
    assert not (tmp_path / "x.db").exists()  # refused before any work


def test_http_service_without_the_sdk_serves_the_rest_and_names_the_extra_at_mcp(tmp_path: Path) -> None:
    probe = (
        "from fastapi.testclient import TestClient\n"
        "from mnemostore import Settings\n"
        "from mnemostore.api import create_app\n"
        f"app = create_app(Settings(database_url='sqlite:///{tmp_path / 'x.db'}'))\n"
        "with TestClient(app) as client:\n"
        "    print(client.get('/healthz').status_code)\n"
        "    answer = client.post('/mcp', json={}, headers={'Authorization': 'Bearer k'})\n"
        "    print(answer.status_code, answer.json()['code'], answer.json()['message'])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        env=without_the_sdk(tmp_path),
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "200",
        "501 mcp_unavailable the MCP endpoint needs the mcp package, which is not installed: "
        "pip install 'mnemostore[mcp]'",
    ]


# -- streamable HTTP -------------------------------------------------------------------------------------------


@pytest.fixture
def rest(live_api: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.url, timeout=30) as client:
        yield client


def api_tenant_with_knowledge(rest: httpx.Client, **body: Any) -> ApiTenant:
    tenant = make_tenant(rest, **body)
    chunk = {"source": "handbook", "external_id": "travel#3", "title": "Travel policy"}
    tenant.ok("POST", "/v1/knowledge", json={**chunk, "content": "Hotels up to 180 EUR a night are approved."})
    return tenant


async def test_http_every_tool(live_api: LiveServer, rest: httpx.Client) -> None:
    tenant = api_tenant_with_knowledge(rest)
    async with http_session(live_api, tenant.key) as session:
        await check_tool_list(session)
        await check_memory_tools(session)
        await check_conversation_tools(session)
        await check_knowledge_tool(session)
        await check_caller_errors(session)
    # The REST API, on the same key, sees what the tools wrote.
    memories = tenant.ok("GET", "/v1/memory", params={"user_id": "alice"})["items"]
    assert [m["content"] for m in memories] == ["Alice is vegan since May"]


async def test_http_read_only_key_reads_and_cannot_write(live_api: LiveServer, rest: httpx.Client) -> None:
    tenant = api_tenant_with_knowledge(rest)
    async with http_session(live_api, tenant.read_only_key) as session:
        await check_read_only(session)
    assert tenant.ok("GET", "/v1/memory", params={"user_id": "alice"})["items"] == []


async def test_http_quota_is_a_tool_error(live_api: LiveServer, rest: httpx.Client) -> None:
    tenant = api_tenant_with_knowledge(rest, quotas={"max_messages": 1})
    async with http_session(live_api, tenant.key) as session:
        chat = await ok(session, "start_conversation", user_id="alice")
        await ok(session, "add_message", conversation_id=chat["id"], role="user", content="one")
        over = await fails(session, "add_message", conversation_id=chat["id"], role="user", content="two")
        assert "has reached its max_messages quota (1)" in over
        assert len((await ok(session, "get_recent_messages", conversation_id=chat["id"]))["messages"]) == 1


async def test_http_tenant_b_never_sees_tenant_a(live_api: LiveServer, rest: httpx.Client) -> None:
    a = api_tenant_with_knowledge(rest)
    b = make_tenant(rest)
    async with http_session(live_api, a.key) as session:
        fact = await ok(session, "add_memory", user_id="alice", content="Alice's door code is 4711")
        chat = await ok(session, "start_conversation", user_id="alice", external_id="shared-key")
        await ok(session, "add_message", conversation_id=chat["id"], role="user", content="The door code is 4711")
    async with http_session(live_api, b.key) as session:
        # The same user id, in B, is another user: none of A's memories, conversations or knowledge.
        assert (await ok(session, "search_memories", user_id="alice", query="door code"))["hits"] == []
        assert (await ok(session, "list_memories", user_id="alice"))["memories"] == []
        assert (await ok(session, "list_conversations", user_id="alice"))["conversations"] == []
        assert (await ok(session, "search_knowledge", query="hotel approved"))["hits"] == []
        # A's ids answer exactly as ids that exist nowhere.
        for tool in ("get_memory", "memory_history", "delete_memory"):
            assert str(MemoryNotFound(uuid.UUID(fact["id"]))) in await fails(session, tool, memory_id=fact["id"])
        changed = await fails(session, "update_memory", memory_id=fact["id"], content="Alice's code is 0000")
        assert str(MemoryNotFound(uuid.UUID(fact["id"]))) in changed
        absent = str(ConversationNotFound(uuid.UUID(chat["id"])))
        assert absent in await fails(session, "get_recent_messages", conversation_id=chat["id"])
        assert absent in await fails(session, "add_message", conversation_id=chat["id"], role="user", content="hi")
        # A's conversation key names nothing in B: B gets a conversation of its own.
        own = await ok(session, "start_conversation", user_id="alice", external_id="shared-key")
        assert own["id"] != chat["id"] and own["message_count"] == 0
    async with http_session(live_api, a.key) as session:
        assert (await ok(session, "get_memory", memory_id=fact["id"]))["content"] == "Alice's door code is 4711"
        messages = (await ok(session, "get_recent_messages", conversation_id=chat["id"]))["messages"]
        assert [m["content"] for m in messages] == ["The door code is 4711"]


def mcp_post(rest: httpx.Client, key: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    return rest.post("/mcp", json=body, headers=headers)


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        (lambda t: None, 401, "unauthorized"),
        (lambda t: "not-a-key", 401, "unauthorized"),
        (lambda t: admin_headers()["Authorization"].removeprefix("Bearer "), 403, "forbidden"),
    ],
    ids=["no key", "unknown key", "admin key"],
)
def test_http_refuses_what_the_rest_api_refuses(
    rest: httpx.Client, key: Callable[[ApiTenant], str | None], status: int, code: str
) -> None:
    tenant = make_tenant(rest)
    answer = mcp_post(rest, key(tenant))
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code and answer.json()["request_id"]
    if status == 401:
        assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_http_lists_tools_and_refuses_a_suspended_tenant(rest: httpx.Client) -> None:
    tenant = make_tenant(rest)
    served = mcp_post(rest, tenant.key)
    assert served.status_code == 200, served.text
    assert {tool["name"] for tool in served.json()["result"]["tools"]} == READ_TOOLS | WRITE_TOOLS
    suspended = rest.patch(f"/v1/tenants/{tenant.id}", json={"status": "suspended"}, headers=admin_headers())
    assert suspended.status_code == 200, suspended.text
    refused = mcp_post(rest, tenant.key)
    assert (refused.status_code, refused.json()["code"]) == (403, "tenant_suspended")


async def test_http_sdk_client_with_a_bad_key_fails_to_connect(live_api: LiveServer) -> None:
    with pytest.raises(BaseExceptionGroup) as raised:
        async with http_session(live_api, "not-a-key"):
            pass  # pragma: no cover - initialize fails
    assert raised.group_contains(MCPError)  # the SDK's error for the 401 answer of initialize
