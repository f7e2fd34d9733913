"""Messages appended with the time they were said (importing past conversations), on SQLite and PostgreSQL.

(async; ``tests/test_message_times.py`` is generated from this file by ``tools/async_to_sync.py``.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mnemostore import AsyncTenantStore, IdempotencyConflict, InvalidInput, NewMessage

SAID = datetime(2023, 5, 8, 13, 56, 12, 345678, tzinfo=UTC)


async def test_past_messages_keep_their_times_and_the_append_order(atenant: AsyncTenantStore) -> None:
    user = await atenant.create_user(display_name="Ada")
    conversation = await atenant.create_conversation(user_id=user.id)
    before = datetime.now(UTC)
    lisbon = timezone(timedelta(hours=1))
    added = await atenant.add_messages(
        conversation.id,
        [
            NewMessage(role="user", content="first said, stored first", created_at=SAID),
            # Times need not follow the order: the conversation's order is the append order.
            NewMessage(role="assistant", content="said earlier", created_at=SAID - timedelta(days=3)),
            NewMessage(role="user", content="in another zone", created_at=datetime(2023, 5, 9, 10, tzinfo=lisbon)),
            NewMessage(role="user", content="no time given"),
        ],
    )
    single = await atenant.add_message(conversation.id, role="user", content="one more", created_at=SAID)
    assert [m.seq for m in added] == [1, 2, 3, 4] and single.seq == 5
    assert added[0].created_at == SAID and added[1].created_at == SAID - timedelta(days=3)
    assert added[2].created_at == datetime(2023, 5, 9, 9, tzinfo=UTC)
    assert added[3].created_at >= before and single.created_at == SAID

    # Read back: from the recent-context window (written through) and from the database alike.
    for _ in range(2):
        page = await atenant.get_conversation_history(conversation.id)
        assert [m.content for m in page.messages] == [m.content for m in [*added, single]]
        assert [m.created_at for m in page.messages] == [m.created_at for m in [*added, single]]
        await atenant.delete_message((await atenant.add_message(conversation.id, role="user", content="x")).id)
    stored = await atenant.get_message(added[1].id)
    assert stored is not None and stored.created_at == SAID - timedelta(days=3)


async def test_search_filters_use_the_time_a_message_was_said(atenant: AsyncTenantStore) -> None:
    user = await atenant.create_user(display_name="Ada")
    conversation = await atenant.create_conversation(user_id=user.id)
    await atenant.add_messages(
        conversation.id,
        [
            NewMessage(role="user", content="the pottery class was on Tuesday", created_at=SAID),
            NewMessage(role="user", content="the pottery class moved", created_at=SAID + timedelta(days=30)),
            NewMessage(role="user", content="pottery again today"),
        ],
    )
    await atenant.wait_for_indexing(inline=True)

    async def found(**window: datetime) -> set[str]:
        hits = await atenant.search("pottery", mode="fulltext", conversation_id=conversation.id, limit=10, **window)
        return {h.content for h in hits}

    assert await found(until=SAID + timedelta(days=1)) == {"the pottery class was on Tuesday"}
    assert await found(since=SAID + timedelta(days=1), until=SAID + timedelta(days=60)) == {"the pottery class moved"}
    assert await found(since=datetime.now(UTC) - timedelta(hours=1)) == {"pottery again today"}


async def test_a_time_must_be_aware_and_is_part_of_an_idempotent_message(atenant: AsyncTenantStore) -> None:
    user = await atenant.create_user(display_name="Ada")
    conversation = await atenant.create_conversation(user_id=user.id)
    with pytest.raises(InvalidInput, match="created_at must be a timezone-aware datetime"):
        await atenant.add_message(conversation.id, role="user", content="naive", created_at=datetime(2023, 5, 8))
    assert await atenant.count_messages(conversation.id) == 0

    first = await atenant.add_message(conversation.id, role="user", content="hi", idempotency_key="k", created_at=SAID)
    replay = await atenant.append_messages(
        conversation.id, [NewMessage(role="user", content="hi", idempotency_key="k", created_at=SAID)]
    )
    assert replay.replayed == [True] and replay.messages[0].id == first.id
    with pytest.raises(IdempotencyConflict, match="created_at"):
        await atenant.add_message(
            conversation.id, role="user", content="hi", idempotency_key="k", created_at=SAID + timedelta(seconds=1)
        )
    assert await atenant.count_messages(conversation.id) == 1
