"""``build_context`` beyond the library: ``POST /v1/conversations/{id}/context``, the typed client and the memory
facade's ``context`` (the MCP tool is checked with the other tools in tests/test_mcp.py)."""

from __future__ import annotations

import uuid

import pytest

from mnemostore import AsyncClient, AsyncMemory, AsyncMnemoStore, Context, ConversationNotFound, InvalidInput
from tests.fix_api import ADMIN_KEY, ApiTenant, LiveServer


def test_the_route_builds_the_block_and_reports_what_it_left_out(api_tenant: ApiTenant) -> None:
    user = api_tenant.ok("POST", "/v1/users", 201, json={})
    chat = api_tenant.ok("POST", "/v1/conversations", 201, json={"user_id": user["id"]})
    url = f"/v1/conversations/{chat['id']}"
    for i in range(6):
        role = "user" if i % 2 == 0 else "assistant"
        api_tenant.ok("POST", url + "/messages", 201, json={"role": role, "content": f"turn {i} about Lisbon"})
    api_tenant.ok("POST", "/v1/memories", 201, json={"content": "Ada loves Lisbon trams", "user_id": user["id"]})

    block = api_tenant.ok("POST", url + "/context", json={"query": "Lisbon trams", "max_tokens": 40})
    assert block["conversation_id"] == chat["id"] and block["query"] == "Lisbon trams"
    assert block["tokens"] <= block["max_tokens"] == 40
    assert "## Relevant memories\n- Ada loves Lisbon trams" in block["text"]
    seqs = [m["seq"] for m in block["sections"]["messages"]]
    assert seqs == list(range(7 - len(seqs), 7)) and len(seqs) >= 2
    assert block["omitted"]["messages"] == 6 - len(seqs) > 0
    assert block["text"].endswith(block["sections"]["messages"][-1]["text"])
    # Read-only keys may build a block; the defaults apply without a body field.
    whole = api_tenant.ok("POST", url + "/context", read_only=True, json={})
    assert whole["query"] == "turn 4 about Lisbon" and whole["omitted"]["messages"] == 0

    small = api_tenant.call("POST", url + "/context", json={"max_tokens": 2})
    assert small.status_code == 422 and "cannot hold even a section header" in small.json()["message"]
    assert api_tenant.call("POST", url + "/context", json={"max_tokens": 0}).status_code == 422
    missing = api_tenant.call("POST", f"/v1/conversations/{uuid.uuid4()}/context", json={})
    assert missing.status_code == 404


async def test_the_client_returns_the_library_s_context(live_api: LiveServer, astore: AsyncMnemoStore) -> None:
    async with AsyncClient(live_api.url, admin_key=ADMIN_KEY, timeout=20) as admin:
        tenant = await admin.create_tenant(f"ctx-{uuid.uuid4().hex[:12]}")
        _, key = await admin.create_tenant_api_key(tenant.id, "rw")
    async with AsyncClient(live_api.url, api_key=key, timeout=20) as client:
        user = await client.create_user()
        chat = await client.create_conversation(user.id)
        await client.add_message(chat.id, role="user", content="Where do the trams go?")
        await client.add_message(chat.id, role="assistant", content="Up the hill to the castle.")
        context = await client.build_context(chat.id, max_tokens=300)
        assert isinstance(context, Context)
        library = await astore.tenant(tenant.id).build_context(chat.id, max_tokens=300)
        assert context == library
        assert [m.seq for m in context.sections.messages] == [1, 2]
        with pytest.raises(InvalidInput, match="cannot hold even a section header"):
            await client.build_context(chat.id, max_tokens=2)
        with pytest.raises(ConversationNotFound):
            await client.build_context(uuid.uuid4())


async def test_the_memory_facade_builds_a_user_s_context(astore: AsyncMnemoStore) -> None:
    memory = AsyncMemory(store=astore, tenant=f"facade-{uuid.uuid4().hex[:12]}")
    await memory.add("Ada is vegetarian", user_id="ada")
    said = await memory.add([{"role": "user", "content": "What should I cook tonight?"}], user_id="ada")
    cid = said[0].conversation_id
    assert cid is not None
    context = await memory.context(cid, user_id="ada", query="vegetarian cooking", max_tokens=200)
    assert "- Ada is vegetarian" in context.text
    assert context.text.endswith("## Recent messages\nuser: What should I cook tonight?")
    # The chat's own memory restates the message already shown: it is not repeated.
    assert [m.text for m in context.sections.memories] == ["- Ada is vegetarian"]
    with pytest.raises(ConversationNotFound):
        await memory.context(cid, user_id="grace")


async def test_the_memory_client_builds_a_user_s_context(live_api: LiveServer) -> None:
    async with AsyncClient(live_api.url, admin_key=ADMIN_KEY, timeout=20) as admin:
        tenant = await admin.create_tenant(f"ctx-{uuid.uuid4().hex[:12]}")
        _, key = await admin.create_tenant_api_key(tenant.id, "rw")
    async with AsyncClient(live_api.url, api_key=key, timeout=20) as client:
        await client.memory.add("Ada is vegetarian", user_id="ada")
        said = await client.memory.add([{"role": "user", "content": "What should I cook?"}], user_id="ada")
        cid = said[0].conversation_id
        assert cid is not None
        context = await client.memory.context(cid, user_id="ada", query="vegetarian", max_tokens=200)
        assert "- Ada is vegetarian" in context.text and context.tokens <= 200
        assert context.text.endswith("## Recent messages\nuser: What should I cook?")
        with pytest.raises(ConversationNotFound):
            await client.memory.context(cid, user_id="grace")
