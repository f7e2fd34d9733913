"""Properties of history paging, checked with hypothesis on SQLite and PostgreSQL.

For any number of messages and any page size, walking ``get_conversation_history`` backwards through ``before``
from the newest page, or forwards through ``after`` from the oldest one, yields every message exactly once and in
order; a cursor is None exactly when there is nothing more in its direction. Each example gets a fresh
conversation in the test's tenant (the ``tenant`` fixture is shared by all examples of one test).
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnemostore import HistoryPage, Message, NewMessage, Role, TenantStore

SETTINGS = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=25,
    deadline=None,
)

counts = st.integers(min_value=0, max_value=60)
page_sizes = st.integers(min_value=1, max_value=20)
ROLES = [Role.USER, Role.ASSISTANT, Role.SYSTEM, Role.TOOL]


def key(messages: list[Message]) -> list[tuple[int, str]]:
    return [(m.seq, str(m.id)) for m in messages]


def new_conversation(tenant: TenantStore, n: int) -> tuple[str, list[Message]]:
    user = tenant.create_user()
    conv = tenant.create_conversation(user.id)
    stored = tenant.add_messages(
        conv.id, [NewMessage(role=ROLES[i % len(ROLES)], content=f"message {i}") for i in range(n)]
    )
    return str(conv.id), stored


def assert_well_formed(page: HistoryPage, limit: int) -> None:
    seqs = [m.seq for m in page.messages]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert len(page.messages) <= limit


def walk_backwards(tenant: TenantStore, cid: str, limit: int, total: int) -> list[HistoryPage]:
    """Pages from the newest to the oldest, following ``before``."""
    page = tenant.get_conversation_history(cid, limit=limit)
    pages = [page]
    while page.before is not None:
        assert len(pages) <= total, "paging does not terminate"
        page = tenant.get_conversation_history(cid, limit=limit, before=page.before)
        pages.append(page)
    return pages


def walk_forwards(tenant: TenantStore, cid: str, limit: int, start: HistoryPage, total: int) -> list[HistoryPage]:
    """Pages from ``start`` to the newest, following ``after``."""
    pages = [start]
    page = start
    while page.after is not None:
        assert len(pages) <= total + 1, "paging does not terminate"
        page = tenant.get_conversation_history(cid, limit=limit, after=page.after)
        pages.append(page)
    return pages


def check_walks(tenant: TenantStore, cid: str, limit: int, expected: list[Message]) -> None:
    """Both walks cover ``expected`` (in seq order) exactly once, with cursors that say the truth."""
    n = len(expected)
    oldest_seq = expected[0].seq if expected else None
    newest_seq = expected[-1].seq if expected else None

    backwards = walk_backwards(tenant, cid, limit, n)
    for page in backwards:
        assert_well_formed(page, limit)
    # Newest first: concatenating them oldest first gives the whole conversation, each message once.
    assert key([m for page in reversed(backwards) for m in page.messages]) == key(expected)
    assert len(backwards) == max(1, -(-n // limit))
    # Every page but the oldest is full; the newest page has nothing newer.
    assert all(len(page.messages) == limit for page in backwards[:-1])
    assert backwards[0].after is None
    for page in backwards:
        # ``before`` is None exactly when nothing is older than the page's first message.
        assert (page.before is None) == (not page.messages or page.messages[0].seq == oldest_seq)
        # ``after`` is None exactly when nothing is newer than the page's last message.
        assert (page.after is None) == (not page.messages or page.messages[-1].seq == newest_seq)
    # Going back through ``after`` from an older page returns the page we came from.
    for newer, older in itertools.pairwise(backwards):
        assert older.after is not None
        again = tenant.get_conversation_history(cid, limit=limit, after=older.after)
        assert key(again.messages) == key(newer.messages)

    forwards = walk_forwards(tenant, cid, limit, backwards[-1], n)
    for page in forwards:
        assert_well_formed(page, limit)
    assert key([m for page in forwards for m in page.messages]) == key(expected)
    assert all(len(page.messages) == limit for page in forwards[1:-1])
    for page in forwards[1:]:
        assert page.messages, "a page reached through a cursor is never empty here"
        assert page.before is not None  # the start page is older
        assert (page.after is None) == (page.messages[-1].seq == newest_seq)
    # Going back through ``before`` from a newer page returns the page we came from.
    for previous, page in itertools.pairwise(forwards):
        assert page.before is not None
        again = tenant.get_conversation_history(cid, limit=limit, before=page.before)
        assert key(again.messages) == key(previous.messages)


@SETTINGS
@given(n=counts, limit=page_sizes)
def test_paging_yields_every_message_once_in_order(tenant: TenantStore, n: int, limit: int) -> None:
    cid, stored = new_conversation(tenant, n)
    assert [m.seq for m in stored] == list(range(1, n + 1))
    check_walks(tenant, cid, limit, stored)


@SETTINGS
@given(n=counts, limit=page_sizes, data=st.data())
def test_paging_with_deleted_messages(tenant: TenantStore, n: int, limit: int, data: st.DataObject) -> None:
    """Deleting messages leaves gaps in seq (numbers are never reused); paging skips them and loses nothing."""
    cid, stored = new_conversation(tenant, n)
    doomed = data.draw(st.sets(st.integers(0, n - 1), max_size=8) if n else st.just(set()), label="deleted")
    for index in doomed:
        tenant.delete_message(stored[index].id)
    remaining = [m for i, m in enumerate(stored) if i not in doomed]
    assert tenant.count_messages(cid) == len(remaining)
    check_walks(tenant, cid, limit, remaining)


@SETTINGS
@given(n=st.integers(min_value=0, max_value=30), limit=page_sizes)
def test_default_page_is_the_newest(tenant: TenantStore, n: int, limit: int) -> None:
    cid, stored = new_conversation(tenant, n)
    page = tenant.get_conversation_history(cid, limit=limit)
    assert key(page.messages) == key(stored[-limit:] if stored else [])
    assert (page.before is None) == (n <= limit)
    assert page.after is None
