"""Neighbour turns in hybrid search (``mnemostore.search._rank``): when semantic search is unsure, a message's
fused score spreads to the messages just before and after it in its conversation, and its semantic score gains a
share of theirs, so the reply to a matching turn can be found though it shares no word with the query.

The pure functions are checked on their own; the behaviour on SQLite (embedded index) and PostgreSQL with
pgvector, with the caller's vectors chosen so the semantic list is flat (every cosine within 0.05 of the best).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator

import pytest

from mnemostore import AsyncMnemoStore, AsyncTenantStore, NewMessage
from mnemostore.search import HashingEmbedder, spread_to_neighbours, with_neighbour_similarity

THEIRS = "their-model-4"
A, B, C, D = (("messages", uuid.UUID(int=i)) for i in (1, 2, 3, 4))


def test_a_score_spreads_to_its_neighbours_more_to_the_reply() -> None:
    spread = spread_to_neighbours({B: 1.0}, {B: (A, C)})
    assert spread == {B: 1.0, A: pytest.approx(0.1), C: pytest.approx(0.3)}
    # Items already scored add up; an item with no neighbours (other kinds) keeps its score alone.
    assert spread_to_neighbours({B: 1.0, C: 0.5}, {B: (A, C)})[C] == pytest.approx(0.8)
    assert spread_to_neighbours({D: 0.7}, {}) == {D: 0.7}


def test_semantic_score_gains_a_share_of_the_neighbours_similarity() -> None:
    lifted = with_neighbour_similarity({B: 0.5, D: 0.5}, {B: (A, C), D: (None, None)}, {A: 0.4, C: 0.6})
    assert lifted == {B: pytest.approx(0.5 + 0.2 * (0.4 + 0.6)), D: 0.5}


def _flat(tilt: float) -> list[float]:
    """A vector whose cosine with (1, 0, 0, 0) is 1 / sqrt(1 + tilt^2): near 1 for every tilt used here."""
    return [1.0, tilt, 0.0, 0.0]


@pytest.fixture(scope="module")
async def nstore(vector_url: str) -> AsyncIterator[AsyncMnemoStore]:
    store = AsyncMnemoStore(vector_url, embedder=HashingEmbedder(384))
    yield store
    await store.close()


@pytest.fixture(scope="module")
async def chat(nstore: AsyncMnemoStore) -> tuple[AsyncTenantStore, dict[str, uuid.UUID], uuid.UUID, uuid.UUID]:
    t = nstore.tenant((await nstore.create_tenant(f"neighbours-{uuid.uuid4().hex[:12]}")).id)
    user = await t.create_user(display_name="Ada")
    first = await t.create_conversation(user.id, title="first")
    texts = [f"Small talk number {i} about the garden and the weather." for i in range(30)]
    texts[10] = "Where did you go hiking last weekend?"
    texts[11] = "Mount Tamalpais, the views were stunning."
    texts.append("Any plans for next weekend?")  # the last message of the first conversation
    # Vectors of the caller's model on the question and on five small-talk turns only: the answer has none and
    # shares no word with the query, so no retriever lists it; only its neighbour, the question, can bring it.
    tilts = {10: 0.29, 3: 0.0, 5: 0.01, 17: 0.02, 21: 0.03, 26: 0.04}
    messages = [
        NewMessage(
            role="assistant" if i % 2 else "user",
            content=text,
            vector=_flat(tilts[i]) if i in tilts else None,
            vector_model=THEIRS if i in tilts else None,
        )
        for i, text in enumerate(texts)
    ]
    added = await t.add_messages(first.id, messages)
    second = await t.create_conversation(user.id, title="second")
    kettle = await t.add_message(second.id, role="assistant", content="The kettle is broken again.")
    ids = {"question": added[10].id, "answer": added[11].id, "last": added[-1].id, "kettle": kettle.id}
    return t, ids, first.id, user.id


async def test_the_reply_to_a_matching_turn_is_found(
    chat: tuple[AsyncTenantStore, dict[str, uuid.UUID], uuid.UUID, uuid.UUID],
) -> None:
    t, ids, conversation, _ = chat
    found = await t.search(
        "hiking weekend",
        vector=_flat(0.0),
        model=THEIRS,
        mode="hybrid",
        kinds=["messages"],
        conversation_id=conversation,
        limit=50,
    )
    hits = [hit.id for hit in found]
    assert hits[0] == ids["question"]
    assert ids["answer"] in hits
    answer = next(hit for hit in found if hit.id == ids["answer"])
    assert answer.content.startswith("Mount Tamalpais") and math.isfinite(answer.score)


async def test_neighbours_obey_the_filters_and_stay_in_their_conversation(
    chat: tuple[AsyncTenantStore, dict[str, uuid.UUID], uuid.UUID, uuid.UUID],
) -> None:
    t, ids, _, user = chat
    only_users = await t.search(
        "hiking weekend", vector=_flat(0.0), model=THEIRS, mode="hybrid", kinds=["messages"], role="user", limit=50
    )
    assert ids["answer"] not in {hit.id for hit in only_users}
    assert all(hit.role == "user" for hit in only_users)
    everywhere = await t.search(
        "hiking weekend", vector=_flat(0.0), model=THEIRS, mode="hybrid", kinds=["messages"], user_id=user, limit=50
    )
    found = {hit.id for hit in everywhere}
    # The last turn of the first conversation matches; the next conversation's first message is not its neighbour.
    assert {ids["question"], ids["answer"], ids["last"]} <= found
    assert ids["kettle"] not in found
