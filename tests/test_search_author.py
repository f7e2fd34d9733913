"""The author a question names (``mnemostore.search._rank.named_author``): in hybrid search of messages, when the
query names exactly one of the candidates' authors (``metadata.author``), that author's messages score
``1 + NAMED_AUTHOR_BOOST`` times more. On SQLite (embedded index) and PostgreSQL with pgvector, with the caller's
vectors so the semantic order is fixed; each case is checked against the same search with the boost off, so the
test fails if the boost does nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

import mnemostore.service._search_async as search_service
from mnemostore import AsyncMnemoStore, AsyncTenantStore, NewMessage
from mnemostore.search import HashingEmbedder, named_author

THEIRS = "their-model-4"


def test_the_one_named_author_is_found_as_whole_words() -> None:
    authors = ["Caroline", "Melanie", "Jo"]
    assert named_author("What did caroline paint?", authors) == "Caroline"
    assert named_author("Where is Melanie's cat?", authors) == "Melanie"
    # Several named: nobody is favoured; a name inside another word is no name.
    assert named_author("Did Caroline and Melanie meet?", authors) is None
    assert named_author("Which journal did she join?", authors) is None
    assert named_author("anything", []) is None
    assert named_author("What did Mary Ann say?", ["Mary Ann", "Ann Lee"]) == "Mary Ann"


@pytest.fixture(scope="module")
async def astore(vector_url: str) -> AsyncIterator[AsyncMnemoStore]:
    store = AsyncMnemoStore(vector_url, embedder=HashingEmbedder(384))
    yield store
    await store.close()


@pytest.fixture(scope="module")
async def chat(astore: AsyncMnemoStore) -> tuple[AsyncTenantStore, uuid.UUID, dict[str, uuid.UUID]]:
    t = astore.tenant((await astore.create_tenant(f"author-{uuid.uuid4().hex[:12]}")).id)
    user = await t.create_user(display_name="Caroline")
    conversation = await t.create_conversation(user.id, title="two friends")
    said = [
        ("Melanie", "I signed up for the pottery class downtown, the pottery class starts on Monday.", 0.0),
        ("Caroline", "Sounds relaxing, I joined one too.", 0.15),
    ] + [
        ("Melanie" if i % 2 else "Caroline", f"Small talk number {i} about the weather and the garden.", 0.3 + i / 20)
        for i in range(10)
    ]
    added = await t.add_messages(
        conversation.id,
        [
            NewMessage(
                role="user",
                content=text,
                metadata={"author": author},
                vector=[1.0, tilt, 0.0, 0.0],
                vector_model=THEIRS,
            )
            for author, text, tilt in said
        ],
    )
    return t, conversation.id, {"melanie": added[0].id, "caroline": added[1].id}


async def _first(t: AsyncTenantStore, conversation: uuid.UUID, query: str) -> uuid.UUID:
    hits = await t.search(
        query,
        vector=[1.0, 0.0, 0.0, 0.0],
        model=THEIRS,
        mode="hybrid",
        kinds=("messages",),
        conversation_id=conversation,
        limit=5,
    )
    return hits[0].id


async def test_the_named_authors_message_comes_first(
    chat: tuple[AsyncTenantStore, uuid.UUID, dict[str, uuid.UUID]], monkeypatch: pytest.MonkeyPatch
) -> None:
    t, conversation, ids = chat
    query = "Which pottery class did Caroline sign up for?"
    assert await _first(t, conversation, query) == ids["caroline"]
    monkeypatch.setattr(search_service, "NAMED_AUTHOR_BOOST", 0.0)
    # Without the boost the other speaker's turn, closer in words and meaning, leads: the boost made the difference.
    assert await _first(t, conversation, query) == ids["melanie"]


async def test_a_query_naming_both_authors_or_none_favours_nobody(
    chat: tuple[AsyncTenantStore, uuid.UUID, dict[str, uuid.UUID]],
) -> None:
    t, conversation, ids = chat
    assert await _first(t, conversation, "Which pottery class did Caroline and Melanie sign up for?") == ids["melanie"]
    assert await _first(t, conversation, "Which pottery class did they sign up for?") == ids["melanie"]
