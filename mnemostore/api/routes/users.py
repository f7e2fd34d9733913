"""``/v1/users``: create, resolve-or-create by channel identity, email or external id, look up, get, update,
delete, erase, identities."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from mnemostore.domain import User, UserIdentity
from mnemostore.errors import InvalidInput, UserNotFound

from .._json_body import JsonRoute
from ..deps import TenantDep
from ..schemas import (
    ErasedOut,
    IdentityCreate,
    IdentityOut,
    Page,
    UserCreate,
    UserOut,
    UserResolve,
    UserResolveEmail,
    UserResolveExternalId,
    UserUpdate,
)
from ._common import Cursor, Limit, no_content, page_from_store

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/users", tags=["users"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def create_user(body: UserCreate, t: TenantDep) -> User:
    """Create a user (409 when another user has the email or external id; 403 at the max_users quota)."""
    return await t.create_user(**body.model_dump())


@router.get("", response_model=Page[UserOut])
async def list_users(t: TenantDep, limit: Limit = 100, cursor: Cursor = None) -> dict[str, object]:
    """The tenant's users, oldest first."""
    return page_from_store(await t.list_users(limit=limit, cursor=cursor))


@router.post("/resolve", response_model=UserOut)
async def resolve_user(body: UserResolve, t: TenantDep) -> User:
    """The user behind a channel identity (a Discord id, a Telegram id…), created on first sight.

    Two simultaneous first calls for one identity make one user; the other fields are used only on creation.
    """
    fields = body.model_dump(exclude={"channel", "channel_user_id"})
    return await t.get_or_create_user_by_identity(body.channel, body.channel_user_id, **fields)


@router.post("/resolve/email", response_model=UserOut)
async def resolve_user_by_email(body: UserResolveEmail, t: TenantDep) -> User:
    """The user with this email (the domain matched in any case), created with the other fields on first sight."""
    return await t.get_or_create_user_by_email(body.email, **body.model_dump(exclude={"email"}))


@router.post("/resolve/external-id", response_model=UserOut)
async def resolve_user_by_external_id(body: UserResolveExternalId, t: TenantDep) -> User:
    """The user with this external id (your system's id for them), created with the other fields on first sight."""
    return await t.get_or_create_user_by_external_id(body.external_id, **body.model_dump(exclude={"external_id"}))


Key = Annotated[str | None, Query(min_length=1, max_length=320)]


@router.get("/lookup", response_model=UserOut)
async def lookup_user(
    t: TenantDep,
    email: Key = None,
    external_id: Key = None,
    channel: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    channel_user_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> User:
    """The user with this email, this external id, or this channel identity (``channel`` and
    ``channel_user_id``): one of the three; 404 when there is none."""
    identity = channel is not None or channel_user_id is not None
    if sum((email is not None, external_id is not None, identity)) != 1:
        raise InvalidInput("look a user up by one of: email, external_id, or channel with channel_user_id")
    if email is not None:
        found, key = await t.get_user_by_email(email), f"with email {email!r}"
    elif external_id is not None:
        found, key = await t.get_user_by_external_id(external_id), f"with external id {external_id!r}"
    else:
        if channel is None or channel_user_id is None:
            raise InvalidInput("a channel identity is channel and channel_user_id: pass both")
        found, key = await t.get_user_by_identity(channel, channel_user_id), f"{channel}:{channel_user_id}"
    if found is None:
        raise UserNotFound(key)
    return found


@router.get("/{user_id}", response_model=UserOut)
async def get_user(user_id: uuid.UUID, t: TenantDep) -> User:
    return await t.get_user_or_raise(user_id)


@router.patch("/{user_id}", response_model=UserOut)
async def update_user(user_id: uuid.UUID, body: UserUpdate, t: TenantDep) -> User:
    """Change the fields sent (null clears one); the others stay as they are."""
    return await t.update_user(user_id, **{name: getattr(body, name) for name in body.model_fields_set})


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_user(user_id: uuid.UUID, t: TenantDep) -> Response:
    """Delete the user and everything they own: identities, conversations, messages, memories."""
    await t.delete_user(user_id)
    return no_content()


@router.post("/{user_id}/erase", response_model=ErasedOut)
async def erase_user(user_id: uuid.UUID, t: TenantDep) -> dict[str, object]:
    """Erase the user everywhere (an erasure request): every row of theirs, their share of the usage counters,
    the tenant's caches; answers what was removed, per table. Rows that do not reference them stay."""
    return {"removed": await t.erase_user(user_id)}


@router.get("/{user_id}/identities", response_model=Page[IdentityOut])
async def list_identities(user_id: uuid.UUID, t: TenantDep) -> dict[str, object]:
    """The user's channel identities (all on one page: a user has a handful)."""
    user = await t.get_user_or_raise(user_id)
    return {"items": await t.list_identities(user.id), "next_cursor": None}


@router.post("/{user_id}/identities", status_code=status.HTTP_201_CREATED, response_model=IdentityOut)
async def link_identity(user_id: uuid.UUID, body: IdentityCreate, t: TenantDep) -> UserIdentity:
    """Attach another channel identity to the user (409 when it belongs to a user already)."""
    return await t.link_identity(user_id, body.channel, body.channel_user_id, username=body.username)
