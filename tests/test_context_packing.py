"""Packing a context block into a token budget (``mnemostore.memory.pack_context``), and the default token counter.

No database: the candidates are made here, so hypothesis can try many budgets and entry sizes. The store's
``build_context`` (tests/test_context_async.py) feeds the same packer with what it finds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemostore import ApproxTokenCounter, Context, ContextBudgetTooSmall, Role, TokenCounter
from mnemostore.memory import Candidate, pack_context, render_entry

T0 = datetime(2024, 5, 1, tzinfo=UTC)


class Words:
    """One token per whitespace-separated word: easy to reason about, additive."""

    def count(self, text: str) -> int:
        return len(text.split())


class Lumpy:
    """Not additive: a text with many lines costs more than its lines apart (as real tokenizers may)."""

    def count(self, text: str) -> int:
        return len(text.split()) + text.count("\n") // 2


def message(seq: int, words: int) -> Candidate:
    role = Role.USER if seq % 2 else Role.ASSISTANT
    return Candidate(
        id=uuid.uuid4(),
        text=render_entry(f"{role.value}: ", " ".join(["w"] * words)),
        created_at=T0 + timedelta(minutes=seq),
        role=role,
        seq=seq,
    )


def entry(words: int, score: float = 1.0, covers: frozenset[uuid.UUID] = frozenset()) -> Candidate:
    return Candidate(
        id=uuid.uuid4(), text=render_entry("- ", " ".join(["x"] * words)), created_at=T0, score=score, covers=covers
    )


def pack(budget: int, counter: TokenCounter, **parts: object) -> Context:
    values: dict[str, object] = {"summaries": [], "memories": [], "knowledge": [], "messages": [], "min_recent": 2}
    values.update(parts)
    messages = values["messages"]
    assert isinstance(messages, list)
    return pack_context(
        conversation_id=uuid.uuid4(),
        query="q",
        max_tokens=budget,
        counter=counter,
        message_count=len(messages),
        **values,  # type: ignore[arg-type]
    )


sizes = st.lists(st.integers(min_value=0, max_value=40), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    budget=st.integers(min_value=3, max_value=400),
    message_sizes=sizes,
    memory_sizes=sizes,
    summary_sizes=sizes,
    knowledge_sizes=sizes,
    min_recent=st.integers(min_value=0, max_value=5),
    lumpy=st.booleans(),
)
def test_the_budget_holds_and_the_newest_messages_go_first(
    budget: int,
    message_sizes: list[int],
    memory_sizes: list[int],
    summary_sizes: list[int],
    knowledge_sizes: list[int],
    min_recent: int,
    lumpy: bool,
) -> None:
    counter: TokenCounter = Lumpy() if lumpy else Words()
    messages = [message(seq, n) for seq, n in enumerate(message_sizes, start=1)]
    memories = [entry(n, score=1 / (i + 1)) for i, n in enumerate(memory_sizes)]
    summaries = [entry(n) for n in summary_sizes]
    knowledge = [entry(n) for n in knowledge_sizes]
    context = pack_context(
        conversation_id=uuid.uuid4(),
        query="q",
        max_tokens=budget,
        counter=counter,
        summaries=summaries,
        memories=memories,
        knowledge=knowledge,
        messages=messages,
        message_count=len(messages) + 7,  # and 7 older ones never read
        min_recent=min_recent,
    )
    # Never over the budget, by the counter, for the whole text.
    assert context.tokens == counter.count(context.text) <= budget
    # The messages kept are the newest ones, in order, with no gap.
    kept = [item.seq for item in context.sections.messages]
    assert kept == [m.seq for m in messages[len(messages) - len(kept) :]]
    assert context.omitted.messages == len(messages) + 7 - len(kept)
    # Every candidate is either in the block or reported as left out (nothing covers a message here).
    for section, candidates in (
        ("memories", memories),
        ("summaries", summaries),
        ("knowledge", knowledge),
    ):
        shown = {item.id for item in getattr(context.sections, section)}
        left = set(getattr(context.omitted, section))
        assert shown | left == {c.id for c in candidates} and not shown & left
    # The text is exactly the entries, section by section.
    for item in (*context.sections.summaries, *context.sections.memories, *context.sections.messages):
        assert item.text in context.text


def test_the_relevant_memory_goes_in_before_summaries_knowledge_and_older_turns() -> None:
    counter = Words()
    messages = [message(seq, 10) for seq in range(1, 11)]
    memory = entry(5)
    parts = {"messages": messages, "memories": [memory], "summaries": [entry(20)], "knowledge": [entry(20)]}
    # Room for the newest 2 messages (11 words each + header) and the memory with its header: nothing else.
    newest_two = sum(counter.count(m.text) for m in messages[-2:]) + counter.count("## Recent messages")
    with_memory = newest_two + counter.count("## Relevant memories") + counter.count(memory.text)
    context = pack(with_memory, counter, **parts)
    assert [i.id for i in context.sections.memories] == [memory.id]
    assert [i.seq for i in context.sections.messages] == [9, 10]
    assert context.sections.summaries == () and context.sections.knowledge == ()
    assert len(context.omitted.summaries) == 1 and context.omitted.messages == 8
    # One token less: the memory does not fit, the two newest messages still do.
    short = pack(with_memory - 1, counter, **parts)
    assert short.sections.memories == () and short.omitted.memories == (memory.id,)
    assert [i.seq for i in short.sections.messages] == [9, 10]


def test_a_long_entry_that_does_not_fit_lets_a_shorter_one_in_but_a_long_message_stops_the_messages() -> None:
    counter = Words()
    big, small = entry(300, score=0.9), entry(3, score=0.5)
    messages = [message(1, 2), message(2, 300), message(3, 2)]
    context = pack(60, counter, memories=[big, small], messages=messages, min_recent=1)
    assert [i.id for i in context.sections.memories] == [small.id]
    assert context.omitted.memories == (big.id,)
    # Message 2 does not fit: message 1, which would, stays out too (no gap in the recent turns).
    assert [i.seq for i in context.sections.messages] == [3]
    assert context.omitted.messages == 2


def test_a_memory_that_restates_a_message_in_the_block_is_not_repeated() -> None:
    messages = [message(1, 3), message(2, 3)]
    echo = entry(3, covers=frozenset({messages[1].id}))
    context = pack(200, Words(), memories=[echo], messages=messages)
    assert context.sections.memories == () and context.omitted.memories == ()


def test_the_text_is_labelled_sections_in_a_fixed_order() -> None:
    messages = [message(1, 1), message(2, 1)]
    context = pack(200, Words(), memories=[entry(1)], summaries=[entry(1)], knowledge=[entry(1)], messages=messages)
    assert context.text == (
        "## Conversation summary\n- x\n\n## Relevant memories\n- x\n\n## Relevant knowledge\n- x\n\n"
        "## Recent messages\nuser: w\nassistant: w"
    )


def test_a_budget_that_cannot_hold_a_header_says_so() -> None:
    with pytest.raises(
        ContextBudgetTooSmall, match=r"max_tokens=1 cannot hold even a section header .*: pass max_tokens=3 or more"
    ):
        pack(1, Words(), messages=[message(1, 1)])
    assert pack(3, Words(), messages=[message(1, 1)]).text == ""


def test_render_entry_indents_continuation_lines() -> None:
    assert render_entry("user: ", "one\ntwo\n") == "user: one\n  two"


def test_the_default_counter_estimates_bpe_counts() -> None:
    counter = ApproxTokenCounter()
    assert isinstance(counter, TokenCounter)
    assert counter.count("") == 0
    # cl100k_base: 27 tokens, o200k_base: 27 (measured offline; see the README)
    text = "Hey Caroline! Good to see you! I'm swamped with the kids & work. What's up with you? Anything new?"
    assert 24 <= counter.count(text) <= 30
    assert counter.count("a b c") == 3 and counter.count("1234567") == 3
    assert counter.count("x " * 1000) == 1000
