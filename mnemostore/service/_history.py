"""History pages from a cached recent-context window, and windows from database rows (pure, both twins).

A window holds every existing message of a conversation with ``floor < seq <= last``, oldest first, and
``floor`` is 0 when nothing older exists (see mnemostore.cache._lua). These functions answer a history request
from a window exactly as the database would, or say that the window cannot (None), in which case the store
reads the database. ``window_from_rows`` builds the window a miss stores back.
"""

from __future__ import annotations

from collections.abc import Sequence

from mnemostore.domain import HistoryPage, Message
from mnemostore.store import encode_cursor

__all__ = ["page_from_window", "window_from_rows"]


def _cursor(seq: int) -> str:
    return encode_cursor("h", seq)


def page_from_window(
    window: Sequence[Message],
    floor: int,
    *,
    limit: int,
    before: int | None = None,
    after: int | None = None,
    complete: bool = True,
) -> HistoryPage | None:
    """The page ``get_conversation_history`` would return, or None when the window cannot tell.

    Args:
        window: the window's messages, or only its newest ones when ``complete`` is False (a default read
            fetches ``limit + 1`` of them).
    """
    if after is not None:
        if not complete or after < floor:
            return None  # messages just newer than ``after`` may be older than the window
        newer = [m for m in window if m.seq > after]
        items = newer[:limit]
        return HistoryPage(
            messages=items,
            before=_cursor(items[0].seq if items else after + 1),
            after=_cursor(items[-1].seq) if len(newer) > limit else None,
        )
    if before is not None:
        if not complete:
            return None
        older = [m for m in window if m.seq < before]
        whole = True
    else:
        older = list(window)
        whole = complete or len(window) <= limit  # a default read fetches limit + 1: fewer means all of it
    if len(older) > limit:
        more_older = True
    elif not whole:
        return None
    elif floor == 0:
        more_older = False
    elif older and len(older) == limit:
        more_older = True  # the message at ``floor`` exists and is older than all of these
    else:
        return None  # the database would add messages from below the window
    items = older[-limit:] if older else []
    return HistoryPage(
        messages=items,
        before=_cursor(items[0].seq) if more_older and items else None,
        after=None if before is None else _cursor(items[-1].seq if items else before - 1),
    )


def window_from_rows(
    rows: Sequence[Message], *, last_seq: int, fetched_all: bool, size: int
) -> tuple[list[Message], int] | None:
    """(window, floor) for a refill from the newest rows of a conversation, or None when it cannot be known.

    Args:
        rows: the newest messages, oldest first, read *after* ``last_seq`` (so they include every message up to
            it; newer ones, appended in between, are dropped here: their own write-through covers them).
        fetched_all: the read returned fewer rows than it asked for, so nothing older exists.
    """
    kept = [m for m in rows if m.seq <= last_seq]
    if len(kept) > size:
        return kept[-size:], kept[-size - 1].seq
    if fetched_all:
        return kept, 0
    return None
