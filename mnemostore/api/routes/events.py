"""``GET /v1/conversations/{id}/events``: the conversation's events as Server-Sent Events.

Fed by the tenant's event channel (Redis pub/sub, or the in-process bus on the embedded default), filtered to
the conversation: ``message.added`` (with the messages) and ``conversation.archived``. Pub/sub keeps no history,
so each ``message.added`` carries ``id:`` = the history cursor of its last message. A client that reconnects
with ``Last-Event-ID`` first gets what it missed, read from the database (up to 500 messages; more: page with
``GET …/messages?after=``), then the live events, without duplicates. A comment line every 15 s keeps proxies
from closing an idle stream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from mnemostore.cache import AsyncEventSubscription, EventType, StoreEvent, message_json
from mnemostore.domain import Message
from mnemostore.service import history_cursor

from .._json_body import JsonRoute
from ..deps import TenantDep

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, tags=["events"])

KEEPALIVE_SECONDS: Final = 15.0
REPLAY_LIMIT: Final = 500


def _frame(event_type: str, at: str, data: dict[str, Any], *, event_id: str | None = None) -> str:
    payload = json.dumps({"type": event_type, "at": at, "data": data}, separators=(",", ":"), ensure_ascii=False)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event_type}\ndata: {payload}\n\n"


async def _stream(
    subscription: AsyncEventSubscription, conversation_id: uuid.UUID, missed: list[Message]
) -> AsyncIterator[str]:
    wanted = str(conversation_id)
    last_seq = 0
    try:
        # Sent once the subscription is live: from here on no event of this conversation is lost.
        yield f"retry: 2000\n: subscribed to conversation {wanted}\n\n"
        if missed:
            last_seq = missed[-1].seq
            replay = {"conversation_id": wanted, "messages": [message_json(m) for m in missed]}
            at = missed[-1].created_at.isoformat()
            yield _frame(EventType.MESSAGE_ADDED, at, replay, event_id=history_cursor(last_seq))
        while True:
            event: StoreEvent | None = await subscription.get(timeout=KEEPALIVE_SECONDS)
            if event is None:
                yield ": keep-alive\n\n"
                continue
            if event.data.get("conversation_id") != wanted:
                continue
            event_id = None
            data: dict[str, Any] = event.data
            if event.type == EventType.MESSAGE_ADDED:
                fresh = [m for m in data.get("messages", []) if m.get("seq", 0) > last_seq]
                if not fresh:
                    continue
                last_seq = fresh[-1]["seq"]
                data = {**data, "messages": fresh}
                event_id = history_cursor(last_seq)
            yield _frame(event.type, event.at.isoformat(), data, event_id=event_id)
    finally:
        await subscription.close()


@router.get(
    "/v1/conversations/{conversation_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "an endless `text/event-stream`: `message.added`, `conversation.archived`",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def stream_events(
    conversation_id: uuid.UUID,
    t: TenantDep,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=200, description="resume after this event (sent by EventSource)"),
    ] = None,
) -> StreamingResponse:
    """The conversation's events as they happen (Server-Sent Events); see the module notes for resuming."""
    await t.get_conversation_or_raise(conversation_id)
    subscription = await t.subscribe_events()
    missed: list[Message] = []
    try:
        if last_event_id:
            # After subscribing, so that nothing falls between the read and the live events (duplicates are
            # dropped by sequence number instead).
            page = await t.get_conversation_history(conversation_id, after=last_event_id, limit=REPLAY_LIMIT)
            missed = page.messages
    except BaseException:
        await subscription.close()
        raise
    return StreamingResponse(
        _stream(subscription, conversation_id, missed),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
