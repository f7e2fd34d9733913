"""What the routers share: paging parameters, turning store results into pages, and 204 answers."""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar

from fastapi import Header, Query, Response

from mnemostore.domain import Page

__all__ = [
    "MAX_LIMIT",
    "Cursor",
    "IdempotencyKey",
    "Limit",
    "no_content",
    "page_from_store",
]

T = TypeVar("T")

MAX_LIMIT: Final = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Cursor = Annotated[
    str | None,
    Query(max_length=1000, description="`next_cursor` of the previous page; leave out for the first page"),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=180,
        description="retrying an append with the same key returns the messages of the first attempt",
    ),
]


def page_from_store(page: Page[Any]) -> dict[str, Any]:
    """A store ``Page`` as the response body."""
    return {"items": page.items, "next_cursor": page.next_cursor}


def no_content() -> Response:
    return Response(status_code=204)
