"""Messages: append one or many (with ``Idempotency-Key``), read the history with cursors, count, get, delete
one or all of a conversation's."""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from fastapi import APIRouter, Query, Response, status
from pydantic import TypeAdapter

from mnemostore.domain import AppendResult, HistoryPage, Message, NewMessage
from mnemostore.errors import InvalidInput, MessageNotFound

from .._json_body import JsonRoute
from ..deps import TenantDep
from ..schemas import CountOut, DeletedOut, HistoryOut, Items, MessageBatch, MessageCreate, MessageOut
from ._common import MAX_LIMIT, IdempotencyKey, no_content

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, tags=["messages"])

REPLAYED_HEADER = "Idempotent-Replayed"  # the name Stripe's API and others use for an answer that is a replay

# The history page is the API's hottest read, and its messages are typed already: they go to JSON in one pass of
# pydantic's serializer, in the shape HistoryOut documents (tests/test_api_resources.py compares the two), instead
# of FastAPI's validate-then-dump of every message (~85 µs for 50 messages instead of ~310).
_HISTORY_JSON: Final = TypeAdapter(HistoryPage)


def _new(body: MessageCreate, key: str | None) -> NewMessage:
    return NewMessage(
        role=body.role,
        content=body.content,
        model=body.model,
        prompt_tokens=body.prompt_tokens,
        completion_tokens=body.completion_tokens,
        metadata=body.metadata or {},
        idempotency_key=key,
        created_at=body.created_at,
        vector=body.vector,
        vector_model=body.vector_model,
    )


@router.post(
    "/v1/conversations/{conversation_id}/messages", status_code=status.HTTP_201_CREATED, response_model=MessageOut
)
async def append_message(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    t: TenantDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Message:
    """Append a message; the conversation's counters move in the same transaction.

    With an ``Idempotency-Key`` header (or ``idempotency_key`` in the body), a retry of the same message answers
    as the first attempt did, with ``Idempotent-Replayed: true``, instead of appending a copy; the same key with a
    different message is refused with 409 (``IdempotencyConflict``).
    """
    if idempotency_key is not None and body.idempotency_key not in (None, idempotency_key):
        raise InvalidInput("the Idempotency-Key header and the body's idempotency_key differ: send one of them")
    result = await t.append_messages(conversation_id, [_new(body, idempotency_key or body.idempotency_key)])
    _mark_replay(response, result)
    return result.messages[0]


@router.post(
    "/v1/conversations/{conversation_id}/messages/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=Items[MessageOut],
)
async def append_messages(
    conversation_id: uuid.UUID,
    body: MessageBatch,
    t: TenantDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, object]:
    """Append several messages in order, in one transaction (all or none).

    With an ``Idempotency-Key`` header K, message i gets the key ``K#i`` (and may not carry its own), so a retry
    of the whole batch answers with the first attempt's messages and ``Idempotent-Replayed: true``; a batch that
    reuses a key for a different message is refused with 409 and writes nothing.
    """
    if idempotency_key is not None and any(m.idempotency_key is not None for m in body.messages):
        raise InvalidInput("with an Idempotency-Key header the messages may not carry their own idempotency_key")
    new = [
        _new(m, f"{idempotency_key}#{i}" if idempotency_key is not None else m.idempotency_key)
        for i, m in enumerate(body.messages)
    ]
    result = await t.append_messages(conversation_id, new)
    _mark_replay(response, result)
    return {"items": result.messages}


def _mark_replay(response: Response, result: AppendResult) -> None:
    """``Idempotent-Replayed: true`` when the answer repeats an earlier one and nothing was written."""
    if result.all_replayed:
        response.headers[REPLAYED_HEADER] = "true"


@router.get("/v1/conversations/{conversation_id}/messages", response_model=HistoryOut)
async def get_history(
    conversation_id: uuid.UUID,
    t: TenantDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    before: Annotated[
        str | None, Query(max_length=1000, description="a page's `before`: the messages just older than it")
    ] = None,
    after: Annotated[
        str | None, Query(max_length=1000, description="a page's `after`: the messages just newer than it")
    ] = None,
) -> Response:
    """Messages in conversation order: the newest ``limit``, or the page before/after a cursor."""
    page = await t.get_conversation_history(conversation_id, limit=limit, before=before, after=after)
    return Response(_HISTORY_JSON.dump_json(page), media_type="application/json")


@router.get("/v1/conversations/{conversation_id}/messages/count", response_model=CountOut)
async def count_messages(conversation_id: uuid.UUID, t: TenantDep) -> dict[str, int]:
    """How many messages the conversation holds."""
    return {"count": await t.count_messages(conversation_id)}


@router.delete("/v1/conversations/{conversation_id}/messages", response_model=DeletedOut)
async def delete_messages(conversation_id: uuid.UUID, t: TenantDep) -> dict[str, int]:
    """Delete every message of the conversation (it stays, empty; sequence numbers are not reused)."""
    return {"deleted": await t.delete_messages(conversation_id)}


@router.get("/v1/messages/{message_id}", response_model=MessageOut)
async def get_message(message_id: uuid.UUID, t: TenantDep) -> Message:
    message = await t.get_message(message_id)
    if message is None:
        raise MessageNotFound(message_id)
    return message


@router.delete("/v1/messages/{message_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_message(message_id: uuid.UUID, t: TenantDep) -> Response:
    """Delete one message (its sequence number is not reused)."""
    await t.delete_message(message_id)
    return no_content()
