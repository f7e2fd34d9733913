"""The pure memory logic: near-duplicate scoring, summarisers, retention policy parsing (no database)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mnemostore import (
    ConfigurationError,
    ExtractiveSummarizer,
    LLMSummarizer,
    Message,
    RetentionPolicy,
    Role,
    SummarizationError,
    Summarizer,
)
from mnemostore.memory import cosine, find_duplicate, normalize_text, token_jaccard


def _messages(*contents: str) -> list[Message]:
    now = datetime.now(UTC)
    return [
        Message(
            id=uuid.uuid4(),
            tenant_id=uuid.uuid4(),
            conversation_id=uuid.uuid4(),
            seq=i + 1,
            role=Role.USER if i % 2 == 0 else Role.ASSISTANT,
            content=c,
            model=None,
            prompt_tokens=0,
            completion_tokens=0,
            metadata={},
            created_at=now,
        )
        for i, c in enumerate(contents)
    ]


def test_normalisation_and_jaccard() -> None:
    assert normalize_text("  \uff28ello,   WORLD! ") == "hello world"
    assert token_jaccard("likes green tea", "Likes GREEN tea.") == 1.0
    assert token_jaccard("lives in Paris", "lives in London") == 0.5
    assert token_jaccard("", "") == 1.0
    assert cosine([1.0, 0.0], [0.0, 0.0]) == 0.0


def test_find_duplicate_rules() -> None:
    candidates = ["User lives in Paris", "User likes green tea"]
    exact = find_duplicate("user likes green tea!", candidates)
    assert exact is not None and (exact.index, exact.method) == (1, "exact")
    assert find_duplicate("User lives in London", candidates) is None
    near = find_duplicate("the user lives in Paris", candidates, jaccard=0.75)
    assert near is not None and (near.index, near.method) == (0, "jaccard")
    # With vectors the semantic rule replaces the textual one: the most similar candidate over the threshold.
    vectors = [[1.0, 0.0], [0.6, 0.8]]
    semantic = find_duplicate("x", candidates, vector=[0.8, 0.6], candidate_vectors=vectors, threshold=0.9)
    assert semantic is not None and semantic.method == "semantic" and semantic.index == 1
    assert find_duplicate("x", candidates, vector=[0.0, 1.0], candidate_vectors=[[1.0, 0.0]] * 2) is None


def test_extractive_summarizer_is_deterministic_and_ordered() -> None:
    messages = _messages(
        "Hi there!",
        "Hello. How can I help?",
        "I am moving to Lisbon in May. I need a flat near the river with two bedrooms.",
        "Lisbon flats near the river are pricey. Alfama and Cais do Sodré are options.",
        "My budget is 1500 euros per month.",
        "ok thanks",
    )
    summarizer = ExtractiveSummarizer(max_sentences=3, ratio=1.0)
    assert isinstance(summarizer, Summarizer)
    summary = summarizer.summarize(messages)
    assert summary == summarizer.summarize(messages)
    lines = summary.splitlines()
    assert len(lines) == 3
    assert all(line.startswith(("user: ", "assistant: ")) for line in lines)
    assert "Hi there!" not in summary and "ok thanks" not in summary
    assert any("Lisbon" in line for line in lines)
    # Conversation order is kept.
    positions = [next(i for i, m in enumerate(messages) if line.split(": ", 1)[1] in m.content) for line in lines]
    assert positions == sorted(positions)
    assert ExtractiveSummarizer().summarize([]) == ""
    with pytest.raises(ValueError):
        ExtractiveSummarizer(max_sentences=0)


def test_llm_summarizer_sync_async_and_errors() -> None:
    messages = _messages("a" * 50, "b" * 50, "c" * 50)
    seen: list[str] = []

    def complete(prompt: str) -> str:
        seen.append(prompt)
        return " summary "

    assert LLMSummarizer(complete).summarize(messages) == "summary"
    assert "user: " + "a" * 50 in seen[0]
    cut = LLMSummarizer(complete, max_chars=120).build_prompt(messages)
    assert "a" * 50 not in cut and "c" * 50 in cut  # oldest lines dropped first

    async def acomplete(prompt: str) -> str:
        return "async summary"

    pending = LLMSummarizer(acomplete).summarize(messages)
    assert not isinstance(pending, str)
    assert asyncio.run(_await(pending)) == "async summary"
    with pytest.raises(SummarizationError, match="non-empty text"):
        LLMSummarizer(lambda prompt: "  ").summarize(messages)
    with pytest.raises(ValueError):
        LLMSummarizer(complete, prompt="no placeholder")


async def _await(value: object) -> object:
    return await value  # type: ignore[misc]


def test_retention_policy_parsing() -> None:
    assert RetentionPolicy.from_config({}) == RetentionPolicy()
    policy = RetentionPolicy.from_config({"retention": {"archive_after_days": 30, "delete_archived_after_days": 0.5}})
    now = datetime(2026, 1, 31, tzinfo=UTC)
    assert policy.archive_before(now) == now - timedelta(days=30)
    assert policy.delete_before(now) == now - timedelta(hours=12)
    assert RetentionPolicy().archive_before(now) is None
    for bad in ({"retention": []}, {"retention": {"archive_after_days": 0}}, {"retention": {"keep": 1}}):
        with pytest.raises(ConfigurationError):
            RetentionPolicy.from_config(bad)
    with pytest.raises(ConfigurationError):
        RetentionPolicy.from_config({"retention": {"delete_archived_after_days": True}})
