"""Summarisers through the store: an async summariser is awaited by AsyncTenantStore and refused by TenantStore.

Not twinned: the point is the difference between the two stores.
"""

from __future__ import annotations

from mnemostore import AsyncTenantStore, InvalidInput, LLMSummarizer, NewMessage, TenantStore

TURNS = ["I moved to Ghent.", "Nice city!", "I work at the port.", "Interesting.", "Bye for now.", "Bye!"]


async def test_async_store_awaits_an_async_summarizer(atenant: AsyncTenantStore) -> None:
    uid = (await atenant.create_user(display_name="Ada")).id
    conv = await atenant.create_conversation(uid)
    await atenant.add_messages(
        conv.id, [NewMessage(role=("user", "assistant")[i % 2], content=c) for i, c in enumerate(TURNS)]
    )

    async def complete(prompt: str) -> str:
        return "User lives in Ghent and works at the port."

    segment = await atenant.consolidate_conversation(conv.id, keep_recent=2, summarizer=LLMSummarizer(complete))
    assert segment is not None and segment.content == "User lives in Ghent and works at the port."
    assert len(segment.source_message_ids) == 4


def test_sync_store_refuses_an_async_summarizer(tenant: TenantStore) -> None:
    uid = tenant.create_user(display_name="Ada").id
    conv = tenant.create_conversation(uid)
    tenant.add_messages(
        conv.id, [NewMessage(role=("user", "assistant")[i % 2], content=c) for i, c in enumerate(TURNS)]
    )

    async def complete(prompt: str) -> str:
        return "never used"

    try:
        tenant.consolidate_conversation(conv.id, keep_recent=2, summarizer=LLMSummarizer(complete))
    except InvalidInput as error:
        assert "AsyncMnemoStore" in str(error)
    else:
        raise AssertionError("the sync store accepted an async summariser")
    assert tenant.retrieve_memories(user_id=uid, kind="summary").items == []
