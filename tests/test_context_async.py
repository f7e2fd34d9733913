"""``build_context`` on both backends: what a conversation's block holds, within its budget, and what it left out.

The packing rules themselves are tried over many budgets in tests/test_context_packing.py; here the store finds
the candidates: summary segments of the conversation, the user's memories and the tenant's knowledge by
relevance, the newest messages.
"""

from __future__ import annotations

import uuid

import pytest

from mnemostore import (
    AsyncTenantStore,
    Context,
    ContextBudgetTooSmall,
    ConversationNotFound,
    InvalidInput,
    Role,
)


class Words:
    """One token per word, and a record of every text it was asked about."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def count(self, text: str) -> int:
        self.seen.append(text)
        return len(text.split())


async def chat(t: AsyncTenantStore, turns: int = 12) -> tuple[uuid.UUID, uuid.UUID]:
    """A user and a conversation of ``turns`` messages, user and assistant in turn; the last one is the user's."""
    user = await t.create_user(display_name="Ada")
    conversation = await t.create_conversation(user.id)
    for i in range(turns):
        role = "user" if (turns - i) % 2 == 1 else "assistant"
        await t.add_message(conversation.id, role=role, content=f"turn {i} talks about the weather in spring")
    return user.id, conversation.id


async def test_the_block_holds_summaries_relevant_memories_knowledge_and_the_newest_turns(
    atenant: AsyncTenantStore,
) -> None:
    t = atenant
    user_id, cid = await chat(t)
    segment = await t.consolidate_conversation(cid, keep_recent=6)
    assert segment is not None
    manual = await t.add_memory_segment(
        "Ada planned a trip to Lisbon", source_message_ids=[segment.source_message_ids[0]], user_id=user_id
    )
    other_user, other_cid = await chat(t, 4)
    await t.consolidate_conversation(other_cid, keep_recent=0)  # another conversation's summary: not ours
    bike = await t.store_memory("Ada rides a red bicycle to work", user_id=user_id)
    await t.store_memory("Grace rides a bicycle too", user_id=other_user)  # not the conversation's user
    chunk = await t.upsert_knowledge("handbook", "bikes", "Bicycles are parked in the yard", title="Parking")

    context = await t.build_context(cid, "where does Ada park her bicycle", max_tokens=1000)
    assert isinstance(context, Context) and context.conversation_id == cid
    assert context.query == "where does Ada park her bicycle"
    assert [s.id for s in context.sections.summaries] == [segment.id, manual.id]
    assert [m.id for m in context.sections.memories] == [bike.id]
    assert [k.id for k in context.sections.knowledge] == [chunk.id]
    assert [m.seq for m in context.sections.messages] == list(range(1, 13))
    assert context.sections.messages[-1].role is Role.USER
    assert not context.omitted.anything
    assert context.text.startswith(f"## Conversation summary\n- [messages 1-6] {segment.content.splitlines()[0]}")
    assert "## Relevant memories\n- Ada rides a red bicycle to work\n\n" in context.text
    assert "## Relevant knowledge\n- [Parking] Bicycles are parked in the yard\n\n" in context.text
    assert context.text.endswith("## Recent messages\n" + "\n".join(m.text for m in context.sections.messages))
    assert context.sections.messages[-1].text == "user: turn 11 talks about the weather in spring"
    assert context.tokens <= 1000 and context.max_tokens == 1000
    # The memory that went in counts as recalled.
    recalled = await t.get_memory_or_raise(bike.id)
    assert recalled.recall_count == 1


async def test_the_budget_is_never_exceeded_and_older_turns_go_first(atenant: AsyncTenantStore) -> None:
    t = atenant
    user_id, cid = await chat(t, 20)
    await t.store_memory("Ada likes the weather in spring", user_id=user_id)
    total = 20
    previous = -1
    for budget in (3, 10, 20, 37, 60, 90, 150, 400):
        counter = Words()
        context = await t.build_context(cid, "weather in spring", max_tokens=budget, token_counter=counter)
        assert context.tokens == counter.count(context.text) <= budget
        seqs = [m.seq for m in context.sections.messages]
        assert seqs == list(range(total - len(seqs) + 1, total + 1))  # a newest run, no gap
        assert context.omitted.messages == total - len(seqs)
        assert len(seqs) >= previous  # a bigger budget never keeps fewer turns
        previous = len(seqs)
    assert previous == total


async def test_the_relevant_memory_is_included_when_it_fits(atenant: AsyncTenantStore) -> None:
    t = atenant
    user_id, cid = await chat(t, 10)
    memory = await t.store_memory("Ada is allergic to peanuts", user_id=user_id)
    counter = Words()
    # The two newest turns with their header, and the memory with its: nothing more.
    history = (await t.get_conversation_history(cid, limit=2)).messages
    turns = sum(counter.count(f"{m.role.value}: {m.content}") for m in history)
    need = counter.count("## Recent messages") + turns + counter.count("## Relevant memories - " + memory.content)
    fits = await t.build_context(cid, "is Ada allergic to peanuts", max_tokens=need, token_counter=counter)
    assert [m.id for m in fits.sections.memories] == [memory.id]
    assert [m.seq for m in fits.sections.messages] == [9, 10]
    assert fits.omitted.messages == 8 and fits.omitted.memories == ()
    short = await t.build_context(cid, "is Ada allergic to peanuts", max_tokens=need - 1, token_counter=counter)
    assert short.sections.memories == () and short.omitted.memories == (memory.id,)
    assert [m.seq for m in short.sections.messages] == [9, 10]


async def test_without_a_query_the_newest_user_message_ranks(atenant: AsyncTenantStore) -> None:
    t = atenant
    user = await t.create_user(display_name="Ada")
    cid = (await t.create_conversation(user.id)).id
    assert (await t.build_context(cid)).text == ""  # nothing yet: an empty block
    await t.add_message(cid, role="assistant", content="Hello! How can I help?")
    context = await t.build_context(cid)
    assert context.query is None and context.sections.memories == ()  # no user message: no ranking
    peanuts = await t.store_memory("Ada is allergic to peanuts", user_id=user.id)
    await t.add_message(cid, role="user", content="Can I eat peanuts?")
    context = await t.build_context(cid)
    assert context.query == "Can I eat peanuts?"
    assert [m.id for m in context.sections.memories] == [peanuts.id]


async def test_a_memory_of_a_message_in_the_block_is_not_repeated(atenant: AsyncTenantStore) -> None:
    t = atenant
    user = await t.create_user(display_name="Ada")
    cid = (await t.create_conversation(user.id)).id
    said = await t.add_message(cid, role="user", content="I moved to Lisbon")
    await t.store_memory("I moved to Lisbon", user_id=user.id, source_message_ids=[said.id], conversation_id=cid)
    context = await t.build_context(cid, "Lisbon")
    assert context.sections.memories == () and not context.omitted.anything
    assert [m.id for m in context.sections.messages] == [said.id]


async def test_what_build_context_refuses(atenant: AsyncTenantStore) -> None:
    t = atenant
    _, cid = await chat(t, 2)
    for bad in (0, -5, True, 2.5, "100"):
        with pytest.raises(InvalidInput, match="max_tokens must be an integer from 1 to"):
            await t.build_context(cid, max_tokens=bad)  # type: ignore[arg-type]
    with pytest.raises(ContextBudgetTooSmall, match="cannot hold even a section header"):
        await t.build_context(cid, max_tokens=2)
    with pytest.raises(InvalidInput, match="query is empty"):
        await t.build_context(cid, "  ")
    with pytest.raises(InvalidInput, match="token_counter must have a count"):
        await t.build_context(cid, token_counter=object())  # type: ignore[arg-type]

    class Broken:
        def count(self, text: str) -> int:
            return -1

    with pytest.raises(InvalidInput, match="must return a non-negative int"):
        await t.build_context(cid, token_counter=Broken())
    with pytest.raises(InvalidInput, match="message_limit"):
        await t.build_context(cid, message_limit=0)
    with pytest.raises(ConversationNotFound):
        await t.build_context(uuid.uuid4())
