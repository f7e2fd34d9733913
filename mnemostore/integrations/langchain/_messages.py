"""LangChain messages <-> mnemostore messages, both ways, losslessly for what LangChain writes.

A LangChain message becomes one mnemostore message: its role (``human`` -> ``user``, ``ai`` -> ``assistant``,
``system``, ``tool`` and ``function`` -> ``tool``; a ``chat`` message by its own role), its text as the content
(what search and the rest of mnemostore read), the token counts and model of an AI message, and everything else
LangChain knows of it (type, id, name, tool calls, additional and response metadata, content blocks) under the
``langchain`` key of the message's metadata. Reading it back rebuilds an equal message. A message written by
something else (the HTTP API, ``mnemostore.Memory``) is read by its role.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_from_dict,
)
from pydantic import ValidationError

from mnemostore.domain import Message, NewMessage, Role
from mnemostore.errors import InvalidInput

__all__ = ["METADATA_KEY", "from_langchain", "to_langchain"]

METADATA_KEY = "langchain"

_log = logging.getLogger("mnemostore.integrations.langchain")

# LangChain's message types (a chunk's type is its class name), without "MessageChunk", lower-cased.
_ROLE_OF_TYPE = {
    "human": Role.USER,
    "ai": Role.ASSISTANT,
    "system": Role.SYSTEM,
    "tool": Role.TOOL,
    "function": Role.TOOL,
}
# The role of a ``ChatMessage``, which may be anything.
_ROLE_OF_CHAT_ROLE = {
    "user": Role.USER,
    "human": Role.USER,
    "assistant": Role.ASSISTANT,
    "ai": Role.ASSISTANT,
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "tool": Role.TOOL,
    "function": Role.TOOL,
}


def from_langchain(message: BaseMessage) -> NewMessage:
    """The mnemostore message to append for a LangChain message.

    Raises:
        InvalidInput: not a LangChain message, or one that is no part of a chat (``RemoveMessage``).
    """
    if not isinstance(message, BaseMessage):
        raise InvalidInput(f"a chat history takes LangChain messages (BaseMessage), got {type(message).__name__}")
    kind = message.type.removesuffix("MessageChunk").lower()
    if kind == "chat":
        role = _ROLE_OF_CHAT_ROLE.get(str(getattr(message, "role", "")).lower(), Role.USER)
    elif kind in _ROLE_OF_TYPE:
        role = _ROLE_OF_TYPE[kind]
    else:
        raise InvalidInput(f"a {message.type!r} message is not a chat message: it cannot be stored in a chat history")
    data: dict[str, Any] = message.model_dump(exclude={"content", "type"}, exclude_defaults=True)
    if isinstance(message.content, str):
        text = message.content
    else:  # content blocks: the text is what mnemostore reads, the blocks are kept as they are
        data["content"] = message.content
        text = message.text
    model: str | None = None
    prompt_tokens = completion_tokens = 0
    if isinstance(message, AIMessage):
        usage = message.usage_metadata
        if usage is not None:
            prompt_tokens, completion_tokens = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        name = message.response_metadata.get("model_name") or message.response_metadata.get("model")
        model = name if isinstance(name, str) and 0 < len(name) <= 200 else None
    return NewMessage(
        role=role,
        content=text,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        metadata={METADATA_KEY: {"type": message.type, "data": data}, **_author(message)},
    )


def _author(message: BaseMessage) -> dict[str, str]:
    """A message's ``name`` (its speaker, in multi-party chats) as mnemostore's ``author``, which search indexes
    with the text."""
    name = message.name
    return {"author": name} if isinstance(name, str) and 0 < len(name.strip()) <= 200 else {}


def to_langchain(message: Message) -> BaseMessage:
    """The LangChain message a stored message stands for (see the module's docstring)."""
    stored = message.metadata.get(METADATA_KEY)
    if isinstance(stored, dict) and isinstance(stored.get("type"), str) and isinstance(stored.get("data", {}), dict):
        data = {"content": message.content, **stored.get("data", {})}
        try:
            return messages_from_dict([{"type": stored["type"], "data": data}])[0]
        except (ValueError, TypeError, ValidationError) as error:  # not as we write it: read it by its role
            _log.warning("message %s: cannot rebuild its LangChain message (%s); reading it by role", message.id, error)
    return _by_role(message)


def _by_role(message: Message) -> BaseMessage:
    ident = str(message.id)
    if message.role is Role.ASSISTANT:
        return AIMessage(content=message.content, id=ident)
    if message.role is Role.SYSTEM:
        return SystemMessage(content=message.content, id=ident)
    if message.role is Role.TOOL:
        call = message.metadata.get("tool_call_id")
        return ToolMessage(content=message.content, tool_call_id=call if isinstance(call, str) else "", id=ident)
    return HumanMessage(content=message.content, id=ident)
