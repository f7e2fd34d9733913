"""The conversation tools: start (or find again) a conversation of a user, append to it, read its recent history,
build its context block for the next answer.

A conversation is named by its id (``start_conversation`` returns it). An agent that keeps its own key of a
thread or session passes it as ``external_id``: starting again with the same key finds the same conversation, so
the agent need not store mnemostore's id. Users are the caller's own ids, as in the memory tools.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from mnemostore.errors import ConflictError

from ._access import Access
from ._shapes import ConversationOut, ConversationsOut, MessageOut, MessagesOut, Metadata, Params, UserId
from ._tool import ToolSpec, tool

__all__ = ["CONVERSATION_TOOLS"]

ConversationId = Annotated[uuid.UUID, Field(description="the conversation's id, as start_conversation returned it")]


class StartConversation(Params):
    user_id: UserId
    title: Annotated[str | None, Field(max_length=500, description="Optional: a short title.")] = None
    external_id: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=200,
            description="Optional: your own key of the conversation (a thread or session id). Starting again "
            "with the same key returns the same conversation instead of a new one.",
        ),
    ] = None


class AddMessage(Params):
    conversation_id: ConversationId
    role: Annotated[Literal["user", "assistant", "system", "tool"], Field(description="who said it")]
    content: Annotated[str, Field(min_length=1, description="the message's text")]
    metadata: Metadata = None
    idempotency_key: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=200,
            description="Optional: a key of your own for this message; retrying with the same key returns the "
            "message already stored instead of appending it twice.",
        ),
    ] = None


class RecentMessages(Params):
    conversation_id: ConversationId
    limit: Annotated[int, Field(ge=1, le=200, description="how many of the newest messages")] = 20
    before: Annotated[str | None, Field(description="the before cursor of a previous answer: older messages")] = None


class BuildContext(Params):
    conversation_id: ConversationId
    query: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=10_000,
            description="Optional: what to pick memories and knowledge for; left out: the newest user message.",
        ),
    ] = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000, description="the block's budget, in tokens")] = 2000


class ContextBlock(BaseModel):
    conversation_id: uuid.UUID
    text: str = Field(description="the block, ready for the prompt: labelled sections, empty ones left out")
    tokens: int = Field(description="its tokens (an offline estimate of GPT-style BPE counts)")
    max_tokens: int
    query: str | None = Field(description="what memories and knowledge were picked for; null: nothing to rank by")
    included: dict[str, int] = Field(description="entries per section: summaries, memories, knowledge, messages")
    omitted: dict[str, int] = Field(description="entries per section left out for want of tokens")


class ListConversations(Params):
    user_id: UserId
    limit: Annotated[int, Field(ge=1, le=100, description="how many conversations per page")] = 20
    cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None


@tool("start_conversation", StartConversation, ConversationOut, title="Start a conversation", writes=True)
async def start_conversation(access: Access, p: StartConversation) -> ConversationOut:
    """Start a conversation with a user (created on first use), to record its messages with add_message.
    Returns the conversation's id. With external_id (your own key of the thread), calling it again returns the
    same conversation: use that to find a conversation again after a restart."""
    tenant = access.tenant
    user = await tenant.get_or_create_user_by_external_id(p.user_id)
    if p.external_id is None:
        conversation = await tenant.create_conversation(user.id, title=p.title)
    else:
        conversation = await tenant.get_or_create_conversation_by_external_id(
            p.external_id, user_id=user.id, title=p.title
        )
        if conversation.user_id != user.id:
            raise ConflictError(
                f"external_id {p.external_id!r} is the key of another user's conversation: choose another key"
            )
    return ConversationOut.of(conversation, p.user_id)


@tool("add_message", AddMessage, MessageOut, title="Add a message to a conversation", writes=True)
async def add_message(access: Access, p: AddMessage) -> MessageOut:
    """Append a message to a conversation, in order: what the user said (role user), your answer (assistant),
    a system or tool message. Give an idempotency_key to make a retry safe."""
    message = await access.tenant.add_message(
        p.conversation_id, role=p.role, content=p.content, metadata=p.metadata, idempotency_key=p.idempotency_key
    )
    return MessageOut.of(message)


@tool("get_recent_messages", RecentMessages, MessagesOut, title="Recent messages of a conversation", writes=False)
async def get_recent_messages(access: Access, p: RecentMessages) -> MessagesOut:
    """The newest messages of a conversation, oldest first: the context to answer in. For older ones, pass the
    answer's before back as before."""
    page = await access.tenant.get_conversation_history(p.conversation_id, limit=p.limit, before=p.before)
    return MessagesOut(
        conversation_id=p.conversation_id, messages=[MessageOut.of(m) for m in page.messages], before=page.before
    )


@tool("build_context", BuildContext, ContextBlock, title="Context for the next answer", writes=False)
async def build_context(access: Access, p: BuildContext) -> ContextBlock:
    """The context to answer in, as one text within max_tokens: the conversation's summaries, the memories of its
    user and the knowledge most relevant to query (default: the newest user message), and its newest messages.
    When the budget is short the newest messages and the most relevant memories go in first; omitted says how
    many entries of each section did not fit."""
    context = await access.tenant.build_context(p.conversation_id, p.query, max_tokens=p.max_tokens)
    sections, left = context.sections, context.omitted
    return ContextBlock(
        conversation_id=context.conversation_id,
        text=context.text,
        tokens=context.tokens,
        max_tokens=context.max_tokens,
        query=context.query,
        included={
            "summaries": len(sections.summaries),
            "memories": len(sections.memories),
            "knowledge": len(sections.knowledge),
            "messages": len(sections.messages),
        },
        omitted={
            "summaries": len(left.summaries),
            "memories": len(left.memories),
            "knowledge": len(left.knowledge),
            "messages": left.messages,
        },
    )


@tool("list_conversations", ListConversations, ConversationsOut, title="List a user's conversations", writes=False)
async def list_conversations(access: Access, p: ListConversations) -> ConversationsOut:
    """A user's conversations, most recently active first, a page at a time (pass next_cursor back as cursor).
    A user never seen gives an empty list."""
    tenant = access.tenant
    user = await tenant.get_user_by_external_id(p.user_id)
    if user is None:
        return ConversationsOut(conversations=[], next_cursor=None)
    page = await tenant.list_conversations(user.id, limit=p.limit, cursor=p.cursor)
    return ConversationsOut(
        conversations=[ConversationOut.of(c, p.user_id) for c in page.items], next_cursor=page.next_cursor
    )


CONVERSATION_TOOLS: tuple[ToolSpec[Any, Any], ...] = (
    start_conversation,
    add_message,
    get_recent_messages,
    build_context,
    list_conversations,
)
