"""``MnemostoreChatMessageHistory`` on SQLite and PostgreSQL (the ``tenant`` and ``atenant`` fixtures): messages of
every LangChain type read back equal, in order, beyond one history page; appends are one transaction; ``clear``
empties the session and keeps its conversation; the session is the conversation with that external id, owned by
the caller's user; and ``RunnableWithMessageHistory`` around a fake chat model keeps a conversation going, sync and
async.

langchain-tests has no standard suite for chat histories (its suites cover chat models, embeddings, tools,
retrievers, vector stores, caches and key-value stores), so these tests are the whole contract.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from mnemostore import (
    AsyncTenantStore,
    ConfigurationError,
    ConflictError,
    InvalidInput,
    InvalidMetadata,
    Role,
    TenantStore,
)
from mnemostore.integrations.langchain import (
    DEFAULT_USER,
    MnemostoreChatMessageHistory,
    _session,
)


def every_kind() -> list[BaseMessage]:
    """One message of each kind LangChain writes to a history, with the fields that make round trips hard."""
    return [
        SystemMessage("You are terse.", id="sys-1"),
        HumanMessage("What is the weather in Paris?", name="ada", additional_kwargs={"locale": "fr"}),
        AIMessage(
            "",
            id="run-1",
            tool_calls=[{"name": "weather", "args": {"city": "Paris", "days": [1, 2]}, "id": "call-1"}],
            usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
            response_metadata={"model_name": "fake-model", "finish_reason": "tool_calls"},
        ),
        ToolMessage("18 °C, sunny", tool_call_id="call-1", name="weather", artifact={"raw": [18, "sunny"]}),
        FunctionMessage("42", name="legacy_function"),
        AIMessage("Sunny, 18 °C.", id="run-2", additional_kwargs={"refusal": None}),
        ChatMessage("Be brief.", role="developer"),
        HumanMessage(content=[{"type": "text", "text": "And this picture?"}, {"type": "image", "url": "x.png"}]),
        AIMessageChunk(content="partial answer", id="run-3"),
    ]


def test_every_kind_of_message_reads_back_equal(tenant: TenantStore) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="s1", user_id="alice")
    history.add_messages(every_kind())
    assert history.messages == every_kind()
    # A second object on the same session reads the same (nothing is kept in the object but the conversation id).
    assert MnemostoreChatMessageHistory(tenant, session_id="s1", user_id="alice").messages == every_kind()


async def test_every_kind_of_message_reads_back_equal_async(atenant: AsyncTenantStore) -> None:
    history = MnemostoreChatMessageHistory(atenant, session_id="s1", user_id="alice")
    await history.aadd_messages(every_kind())
    assert await history.aget_messages() == every_kind()


def test_the_session_is_a_conversation_of_the_callers_user(tenant: TenantStore) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="chat-42", user_id="alice")
    history.add_messages(every_kind()[:4])
    conversation = tenant.get_conversation_by_external_id("chat-42")
    assert conversation is not None
    owner = tenant.get_user(conversation.user_id)
    assert owner is not None and owner.external_id == "alice"
    assert conversation.channel == "langchain"
    stored = tenant.get_conversation_history(conversation.id).messages
    assert [(m.role, m.content) for m in stored] == [
        (Role.SYSTEM, "You are terse."),
        (Role.USER, "What is the weather in Paris?"),
        (Role.ASSISTANT, ""),
        (Role.TOOL, "18 °C, sunny"),
    ]
    assert (stored[2].model, stored[2].prompt_tokens, stored[2].completion_tokens) == ("fake-model", 12, 7)
    assert stored[2].metadata["langchain"]["data"]["tool_calls"][0]["args"] == {"city": "Paris", "days": [1, 2]}


def test_a_named_speaker_is_the_messages_author_and_is_found_by_it(tenant: TenantStore) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="group-chat", user_id="alice")
    said = HumanMessage(content="I booked the pottery class", name="Melanie")
    history.add_messages([said, HumanMessage(content="great")])
    assert history.messages[0] == said  # read back equal, name included
    conversation = tenant.get_conversation_by_external_id("group-chat")
    assert conversation is not None
    stored = tenant.get_conversation_history(conversation.id).messages
    assert [m.metadata.get("author") for m in stored] == ["Melanie", None]
    hits = tenant.search("Melanie", mode="fulltext", conversation_id=conversation.id)
    assert [h.id for h in hits] == [stored[0].id]


def test_the_default_user(tenant: TenantStore) -> None:
    MnemostoreChatMessageHistory(tenant, session_id="s").add_messages([HumanMessage("hi")])
    conversation = tenant.get_conversation_by_external_id("s")
    assert conversation is not None
    owner = tenant.get_user(conversation.user_id)
    assert owner is not None and owner.external_id == DEFAULT_USER == "langchain"


def test_messages_come_in_order_across_history_pages(tenant: TenantStore, monkeypatch: pytest.MonkeyPatch) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="long")
    sent = [HumanMessage(f"m{i}") if i % 2 else AIMessage(f"m{i}") for i in range(10)]
    history.add_messages(sent[:4])
    history.add_messages(sent[4:])
    monkeypatch.setattr(_session, "PAGE_SIZE", 3)  # 10 messages: four pages, the oldest partial
    assert history.messages == sent


def test_more_messages_than_the_stores_largest_page(tenant: TenantStore) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="longer")
    sent = [HumanMessage(f"message {i}") for i in range(_session.PAGE_SIZE + 5)]
    history.add_messages(sent)
    assert history.messages == sent


def test_messages_written_elsewhere_are_read_by_role(tenant: TenantStore) -> None:
    user = tenant.get_or_create_user_by_external_id("bob")
    conversation = tenant.create_conversation(user.id, external_id="from-http")
    stored = tenant.add_messages(
        conversation.id,
        [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "system", "content": "rules"},
            {"role": "tool", "content": "result", "metadata": {"tool_call_id": "c9"}},
        ],
    )
    messages = MnemostoreChatMessageHistory(tenant, session_id="from-http", user_id="bob").messages
    assert messages == [
        HumanMessage("hello", id=str(stored[0].id)),
        AIMessage("hi", id=str(stored[1].id)),
        SystemMessage("rules", id=str(stored[2].id)),
        ToolMessage("result", tool_call_id="c9", id=str(stored[3].id)),
    ]


def test_add_messages_is_one_transaction(tenant: TenantStore) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="atomic")
    history.add_messages([HumanMessage("kept")])
    with pytest.raises(InvalidMetadata):
        history.add_messages([HumanMessage("lost"), AIMessage("not JSON", additional_kwargs={"x": object()})])
    assert history.messages == [HumanMessage("kept")]


def test_clear_deletes_the_messages_and_keeps_the_conversation(tenant: TenantStore) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="to-clear", user_id="alice")
    history.add_messages([HumanMessage("one"), AIMessage("two")])
    before = tenant.get_conversation_by_external_id("to-clear")
    history.clear()
    assert history.messages == []
    after = tenant.get_conversation_by_external_id("to-clear")
    assert after is not None and before is not None
    assert (after.id, after.message_count) == (before.id, 0)
    history.add_message(HumanMessage("three"))
    assert history.messages == [HumanMessage("three")]


async def test_clear_async(atenant: AsyncTenantStore) -> None:
    history = MnemostoreChatMessageHistory(atenant, session_id="to-clear")
    await history.aadd_messages([HumanMessage("one")])
    await history.aclear()
    assert await history.aget_messages() == []


def test_reading_or_clearing_an_unknown_session_writes_nothing(tenant: TenantStore) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="never", user_id="nobody")
    assert history.messages == []
    history.clear()
    history.add_messages([])
    assert tenant.get_conversation_by_external_id("never") is None
    assert tenant.get_user_by_external_id("nobody") is None


def test_a_session_of_another_user_is_refused(tenant: TenantStore) -> None:
    MnemostoreChatMessageHistory(tenant, session_id="private", user_id="alice").add_messages([HumanMessage("secret")])
    intruder = MnemostoreChatMessageHistory(tenant, session_id="private", user_id="mallory")
    with pytest.raises(ConflictError, match="another user"):
        _ = intruder.messages
    with pytest.raises(ConflictError):
        intruder.add_messages([HumanMessage("mine now")])
    with pytest.raises(ConflictError):
        intruder.clear()
    assert MnemostoreChatMessageHistory(tenant, session_id="private", user_id="alice").messages == [
        HumanMessage("secret")
    ]


def test_a_conversation_deleted_meanwhile_starts_the_session_again(tenant: TenantStore) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="gone")
    history.add_messages([HumanMessage("old")])
    conversation = tenant.get_conversation_by_external_id("gone")
    assert conversation is not None
    tenant.delete_conversation(conversation.id)
    assert history.messages == []
    history.add_messages([HumanMessage("new")])
    assert history.messages == [HumanMessage("new")]


async def test_concurrent_first_appends_make_one_conversation(atenant: AsyncTenantStore) -> None:
    histories = [MnemostoreChatMessageHistory(atenant, session_id="race", user_id="alice") for _ in range(4)]
    await asyncio.gather(*(h.aadd_messages([HumanMessage(f"from {i}")]) for i, h in enumerate(histories)))
    messages = await MnemostoreChatMessageHistory(atenant, session_id="race", user_id="alice").aget_messages()
    assert sorted(str(m.content) for m in messages) == [f"from {i}" for i in range(4)]


def test_bad_arguments(tenant: TenantStore) -> None:
    with pytest.raises(InvalidInput, match="session_id"):
        MnemostoreChatMessageHistory(tenant, session_id="")
    with pytest.raises(InvalidInput, match="user_id"):
        MnemostoreChatMessageHistory(tenant, session_id="s", user_id=" ")
    with pytest.raises(InvalidInput, match="tenant view"):
        MnemostoreChatMessageHistory("acme", session_id="s")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not a chat message"):
        MnemostoreChatMessageHistory(tenant, session_id="s").add_messages([RemoveMessage(id="x")])


async def test_a_history_on_an_async_tenant_has_async_methods_only(atenant: AsyncTenantStore) -> None:
    history = MnemostoreChatMessageHistory(atenant, session_id="s")
    with pytest.raises(ConfigurationError, match="async methods"):
        _ = history.messages
    with pytest.raises(ConfigurationError):
        history.add_messages([HumanMessage("hi")])
    with pytest.raises(ConfigurationError):
        history.clear()


async def test_async_methods_on_a_sync_tenant_run_on_a_thread(tenant: TenantStore) -> None:
    history = MnemostoreChatMessageHistory(tenant, session_id="threads")
    await history.aadd_messages([HumanMessage("hi"), AIMessage("hello")])
    assert await history.aget_messages() == [HumanMessage("hi"), AIMessage("hello")]
    await history.aclear()
    assert history.messages == []


# -- RunnableWithMessageHistory ----------------------------------------------------------------------------------


def _chain(seen: list[list[BaseMessage]], replies: list[str]) -> Any:
    """A fake chat model (langchain-core's test double of an LLM endpoint) that records the messages it is sent."""
    model = GenericFakeChatModel(messages=iter([AIMessage(reply, id=f"reply-{i}") for i, reply in enumerate(replies)]))

    def record(messages: list[BaseMessage]) -> list[BaseMessage]:
        seen.append(list(messages))
        return messages

    return RunnableLambda(record) | model


# langchain-core 1.x deprecates RunnableWithMessageHistory (for LangGraph's persistence); it is still what LangChain
# programs use with a chat history, so it is what these tests drive.
DEPRECATED = pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")


@DEPRECATED
def test_runnable_with_message_history_keeps_the_conversation(tenant: TenantStore) -> None:
    seen: list[list[BaseMessage]] = []
    chain = RunnableWithMessageHistory(
        _chain(seen, ["Hello Ada!", "Your name is Ada."]),
        lambda session_id: MnemostoreChatMessageHistory(tenant, session_id=session_id, user_id="ada"),
    )
    config: Any = {"configurable": {"session_id": "chat-1"}}
    first = chain.invoke([HumanMessage("Hi, I am Ada.")], config=config)
    second = chain.invoke([HumanMessage("What is my name?")], config=config)
    assert (first.content, second.content) == ("Hello Ada!", "Your name is Ada.")
    # The second call saw the first exchange, read back from the store.
    assert seen[1] == [
        HumanMessage("Hi, I am Ada."),
        AIMessage("Hello Ada!", id="reply-0"),
        HumanMessage("What is my name?"),
    ]
    stored = MnemostoreChatMessageHistory(tenant, session_id="chat-1", user_id="ada").messages
    assert [(type(m).__name__, m.content) for m in stored] == [
        ("HumanMessage", "Hi, I am Ada."),
        ("AIMessage", "Hello Ada!"),
        ("HumanMessage", "What is my name?"),
        ("AIMessage", "Your name is Ada."),
    ]
    # Another session starts empty.
    chain_other = RunnableWithMessageHistory(
        _chain(seen, ["Who are you?"]),
        lambda session_id: MnemostoreChatMessageHistory(tenant, session_id=session_id, user_id="ada"),
    )
    chain_other.invoke([HumanMessage("Hello")], config={"configurable": {"session_id": "chat-2"}})
    assert seen[2] == [HumanMessage("Hello")]


@DEPRECATED
async def test_runnable_with_message_history_async(atenant: AsyncTenantStore) -> None:
    seen: list[list[BaseMessage]] = []
    chain = RunnableWithMessageHistory(
        _chain(seen, ["one", "two"]),
        lambda session_id: MnemostoreChatMessageHistory(atenant, session_id=session_id),
    )
    config: Any = {"configurable": {"session_id": "async-chat"}}
    await chain.ainvoke([HumanMessage("first")], config=config)
    await chain.ainvoke([HumanMessage("second")], config=config)
    assert seen[1] == [HumanMessage("first"), AIMessage("one", id="reply-0"), HumanMessage("second")]
    history = MnemostoreChatMessageHistory(atenant, session_id="async-chat")
    assert [m.content for m in await history.aget_messages()] == ["first", "one", "second", "two"]


# -- from_url ----------------------------------------------------------------------------------------------------


def test_from_url_creates_the_schema_and_the_tenant_and_reopens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    with MnemostoreChatMessageHistory.from_url(url, "s1", tenant="acme", user_id="alice") as history:
        history.add_messages([HumanMessage("remember me")])
    with MnemostoreChatMessageHistory.from_url(url, "s1", tenant="acme", user_id="alice") as history:
        assert history.messages == [HumanMessage("remember me")]
    with MnemostoreChatMessageHistory.from_url(url, "s1", tenant=f"other-{uuid.uuid4().hex[:6]}") as history:
        assert history.messages == []


def test_from_url_with_a_tenant_id_that_does_not_exist(tmp_path: Path) -> None:
    from mnemostore import TenantNotFound

    with pytest.raises(TenantNotFound):
        MnemostoreChatMessageHistory.from_url(f"sqlite:///{tmp_path / 'x.db'}", "s1", tenant=str(uuid.uuid4()))
