"""Server-Sent Events of a conversation: the event the client yields, and the parser of the stream's lines.

The service (``GET /v1/conversations/{id}/events``) sends, once subscribed, a first frame with ``retry:`` and a
comment; then ``message.added`` frames (``id:`` = the history cursor of their last message, the ``data`` carries
the messages) and ``conversation.archived`` frames, and a comment every 15 s while idle. The parser follows the
WHATWG rules these frames need: fields ``event``, ``data``, ``id``, ``retry``; lines starting with ``:`` are
comments; a blank line ends a frame; the last ``id`` seen stays the stream's last event id.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mnemostore.client._codec import decode
from mnemostore.domain import Message
from mnemostore.errors import MnemostoreError

__all__ = ["ConversationEvent", "Frame", "SseParser"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationEvent:
    """Something that happened in a conversation, as the client's event stream yields it.

    Attributes:
        type: ``message.added`` or ``conversation.archived`` (the values of ``mnemostore.EventType``).
        id: a ``message.added``'s id, the history cursor of its last message: pass it as ``last_event_id`` (or
            as ``after`` of ``get_conversation_history``) to continue after it. None for other events.
        at: when it happened.
        conversation_id: the conversation.
        messages: the messages a ``message.added`` carries, in order (the same ``Message`` the library returns);
            empty for other events.
        data: the event's data as the service sent it.
    """

    type: str
    id: str | None
    at: datetime
    conversation_id: uuid.UUID
    messages: list[Message] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of the stream: what came before a blank line."""

    event: str | None
    data: str | None
    id: str | None
    comments: tuple[str, ...] = ()

    def to_event(self) -> ConversationEvent | None:
        """The event this frame carries, or None (comments only: the subscription, keep-alives)."""
        if self.data is None:
            return None
        try:
            payload = json.loads(self.data)
            data: dict[str, Any] = payload["data"]
            return ConversationEvent(
                type=str(payload.get("type") or self.event or "message"),
                id=self.id,
                at=datetime.fromisoformat(payload["at"]),
                conversation_id=uuid.UUID(data["conversation_id"]),
                messages=[decode(Message, m) for m in data.get("messages", [])],
                data=data,
            )
        except (ValueError, KeyError, TypeError) as error:
            raise MnemostoreError(
                f"the event stream sent a frame this client cannot read: {self.data[:200]!r}"
            ) from error


class SseParser:
    """Turns the lines of a ``text/event-stream`` into frames."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        """The last ``id`` the stream sent (``Last-Event-ID`` when reconnecting)."""
        self.retry_ms: int | None = None
        """The reconnection delay the stream asked for."""
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._comments: list[str] = []
        self._any = False

    def feed(self, line: str) -> Frame | None:
        """Take one line (without its line break); a blank line returns the frame it ends, if it had anything."""
        if line == "":
            frame = None
            if self._any:
                data = "\n".join(self._data) if self._data else None
                frame = Frame(self._event, data, self._id, tuple(self._comments))
            self._reset()
            return frame
        self._any = True
        name, colon, value = line.partition(":")
        if not colon:
            value = ""
        elif value.startswith(" "):
            value = value[1:]
        if name == "":
            self._comments.append(value)
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\x00" not in value:
            self._id = value
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None
