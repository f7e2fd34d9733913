"""``/v1/conversations``: create, resolve by external id, look up, list by user and status, get, update, archive,
delete, stats, export, import, consolidate into a memory segment, build an agent's context block."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from mnemostore.domain import Context, Conversation, ConversationStats, ConversationStatus
from mnemostore.errors import ConversationNotFound, InvalidInput

from .._json_body import JsonRoute
from ..deps import ReadTenantDep, TenantDep
from ..schemas import (
    ConsolidateRequest,
    ConsolidationOut,
    ContextOut,
    ContextRequest,
    ConversationCreate,
    ConversationExport,
    ConversationOut,
    ConversationResolve,
    ConversationStatsOut,
    ConversationUpdate,
    Page,
)
from ._common import Cursor, Limit, no_content, page_from_store
from .search import SEARCH_RESPONSES

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/conversations", tags=["conversations"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConversationOut)
async def create_conversation(body: ConversationCreate, t: TenantDep) -> Conversation:
    return await t.create_conversation(
        body.user_id,
        title=body.title,
        channel=body.channel,
        model_override=body.model_override,
        metadata=body.metadata,
        external_id=body.external_id,
    )


@router.get("", response_model=Page[ConversationOut])
async def list_conversations(
    t: TenantDep,
    user_id: Annotated[uuid.UUID | None, Query(description="this user's conversations; left out: all users'")] = None,
    conversation_status: Annotated[
        ConversationStatus | None,
        Query(alias="status", description="only these; without user_id only `active` is possible"),
    ] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> dict[str, object]:
    """Conversations, most recently active first: a user's (any status, or one), or the tenant's active ones."""
    if user_id is not None:
        page = await t.list_conversations(user_id, status=conversation_status, limit=limit, cursor=cursor)
    elif conversation_status in (None, ConversationStatus.ACTIVE):
        page = await t.list_active_conversations(limit=limit, cursor=cursor)
    else:
        raise InvalidInput("listing archived conversations needs user_id: pass user_id=…")
    return page_from_store(page)


@router.post("/import", status_code=status.HTTP_201_CREATED, response_model=ConversationOut)
async def import_conversation(
    body: ConversationExport,
    t: TenantDep,
    user_id: Annotated[uuid.UUID | None, Query(description="the owner here (default: the exported owner)")] = None,
    new_ids: Annotated[bool, Query(description="give the conversation and its messages fresh ids")] = False,
) -> Conversation:
    """Recreate an exported conversation (409 when its id exists here: pass new_ids=true)."""
    data: dict[str, Any] = body.model_dump(mode="json")
    return await t.import_conversation(data, user_id=user_id, new_ids=new_ids)


@router.post("/resolve", response_model=ConversationOut)
async def resolve_conversation(body: ConversationResolve, t: TenantDep) -> Conversation:
    """The conversation with this external id, created for ``user_id`` with the other fields on first sight
    (two simultaneous first calls make one conversation; it may belong to another user: check ``user_id``)."""
    fields = body.model_dump(exclude={"external_id", "user_id"})
    return await t.get_or_create_conversation_by_external_id(body.external_id, user_id=body.user_id, **fields)


@router.get("/lookup", response_model=ConversationOut)
async def lookup_conversation(
    t: TenantDep,
    external_id: Annotated[str, Query(min_length=1, max_length=200, description="your own key of the conversation")],
) -> Conversation:
    """The conversation with this external id (404 when there is none)."""
    found = await t.get_conversation_by_external_id(external_id)
    if found is None:
        raise ConversationNotFound(f"with external id {external_id!r}")
    return found


@router.get("/{conversation_id}", response_model=ConversationOut)
async def get_conversation(conversation_id: uuid.UUID, t: TenantDep) -> Conversation:
    return await t.get_conversation_or_raise(conversation_id)


@router.patch("/{conversation_id}", response_model=ConversationOut)
async def update_conversation(conversation_id: uuid.UUID, body: ConversationUpdate, t: TenantDep) -> Conversation:
    """Change the fields sent (null clears title or model_override); the others stay as they are."""
    fields = {name: getattr(body, name) for name in body.model_fields_set}
    return await t.update_conversation(conversation_id, **fields)


@router.post("/{conversation_id}/archive", response_model=ConversationOut)
async def archive_conversation(conversation_id: uuid.UUID, t: TenantDep) -> Conversation:
    """Set the status to archived (and publish ``conversation.archived``)."""
    return await t.archive_conversation(conversation_id)


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_conversation(conversation_id: uuid.UUID, t: TenantDep) -> Response:
    """Delete the conversation with its messages, tool executions, checkpoints, events and metrics."""
    await t.delete_conversation(conversation_id)
    return no_content()


@router.get("/{conversation_id}/stats", response_model=ConversationStatsOut)
async def get_conversation_stats(conversation_id: uuid.UUID, t: TenantDep) -> ConversationStats:
    """Messages by role, tokens, tool executions, checkpoints, first and last message times."""
    return await t.get_conversation_stats(conversation_id)


@router.get("/{conversation_id}/export", response_model=ConversationExport)
async def export_conversation(conversation_id: uuid.UUID, t: TenantDep) -> dict[str, Any]:
    """The conversation and all its messages as one document, for ``POST /v1/conversations/import``."""
    return await t.export_conversation(conversation_id)


@router.post("/{conversation_id}/consolidate", response_model=ConsolidationOut)
async def consolidate_conversation(
    conversation_id: uuid.UUID, body: ConsolidateRequest, t: TenantDep
) -> dict[str, object]:
    """Summarise the older messages (all but the newest ``keep_recent``) that no earlier segment covers into a
    memory segment of the conversation's user (the service's extractive summariser); the messages stay.
    ``segment`` is null when there is nothing new to consolidate (fewer than ``min_messages``)."""
    segment = await t.consolidate_conversation(conversation_id, **body.model_dump())
    return {"segment": segment}


@router.post("/{conversation_id}/context", response_model=ContextOut, responses=SEARCH_RESPONSES)
async def build_context(conversation_id: uuid.UUID, body: ContextRequest, t: ReadTenantDep) -> Context:
    """A ready context block for an agent's next answer: the conversation's summary segments, its user's memories
    and the tenant's knowledge most relevant to ``query`` (default: the newest user message), and its newest
    messages, within ``max_tokens`` (the service's offline token estimate). Entries go in whole, by priority: the
    newest ``min_recent`` messages, memories, summaries, knowledge, older messages; ``omitted`` says what did not
    fit. Only reads (the memories included count as recalled)."""
    return await t.build_context(conversation_id, **body.model_dump())
