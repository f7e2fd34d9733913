"""A message's author (``metadata["author"]``) is indexed with its text: full text finds a message by who said it,
the indexer embeds ``"{author}: {content}"``, the stored content stays as written, and a sealed author is indexed
nowhere (migration 0012; ``mnemostore.store.indexed_message_text``)."""

from __future__ import annotations

import base64
import os
import threading

import pytest

from mnemostore import AsyncMnemoStore, MnemoStore, NewMessage, TenantStore
from mnemostore.search import HashingEmbedder
from mnemostore.store import indexed_message_text


class RecordingEmbedder(HashingEmbedder):
    """The test hashing embedder, remembering every text it was asked to embed."""

    def __init__(self) -> None:
        super().__init__(384)  # 384: the HNSW index of 0003 exists on pgvector
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            self.texts += texts
        return super()._embed_batch(texts)


def chat(tenant: TenantStore) -> dict[str, str]:
    user = tenant.create_user(display_name="someone")
    conversation = tenant.create_conversation(user.id)
    said = [
        ("Alice", "I finally moved into the new flat"),
        ("Bob", "How is the neighbourhood?"),
        (None, "Quiet, and close to the river"),
    ]
    added = tenant.add_messages(
        conversation.id,
        [NewMessage(role="user", content=text, metadata={"author": who} if who else {}) for who, text in said],
    )
    return {message.content: str(message.id) for message in added} | {"conversation": str(conversation.id)}


def test_fulltext_finds_a_message_by_its_author(tenant: TenantStore) -> None:
    ids = chat(tenant)
    hits = tenant.search("what did Alice say?", mode="fulltext", kinds=("messages",))
    assert [str(hit.id) for hit in hits] == [ids["I finally moved into the new flat"]]
    assert hits[0].content == "I finally moved into the new flat"  # stored as written
    assert hits[0].metadata == {"author": "Alice"}
    # The author and the words together rank first; the words alone still find the others.
    hits = tenant.search("Bob neighbourhood", mode="fulltext", kinds=("messages",))
    assert str(hits[0].id) == ids["How is the neighbourhood?"]
    assert [str(hit.id) for hit in tenant.search("river", mode="fulltext", kinds=("messages",))] == [
        ids["Quiet, and close to the river"]
    ]


def test_indexed_text_rule() -> None:
    assert indexed_message_text("hi", {"author": "Alice"}) == "Alice: hi"
    for metadata in ({}, {"author": ""}, {"author": "  "}, {"author": 7}, {"author": None}, None, []):
        assert indexed_message_text("hi", metadata) == "hi"
    assert indexed_message_text("hi", {"author": "enc:v1:k1:AAAA"}) == "hi"  # sealed: never indexed


@pytest.mark.parametrize("vector_backend", ["sqlite", "pgvector"], indirect=True)
def test_the_indexer_embeds_the_author_with_the_text(vector_url: str) -> None:
    embedder = RecordingEmbedder()
    with MnemoStore(vector_url, embedder=embedder) as store:
        tenant = store.tenant(store.create_tenant(f"author-{os.urandom(4).hex()}").id)
        ids = chat(tenant)
        store.wait_for_indexing()
        assert "Alice: I finally moved into the new flat" in embedder.texts
        assert "Bob: How is the neighbourhood?" in embedder.texts
        assert "Quiet, and close to the river" in embedder.texts  # no author: the content alone
        hits = tenant.search("Alice flat", mode="semantic", kinds=("messages",), conversation_id=ids["conversation"])
        assert str(hits[0].id) == ids["I finally moved into the new flat"]


async def test_a_sealed_author_is_not_indexed(database_url: str) -> None:
    """With ``author`` among the secret metadata keys the database holds an envelope: full text does not find
    the message by its author (nor by the envelope), only by its words, as before authors were indexed."""
    store = AsyncMnemoStore(
        database_url,
        encryption_keys=[f"k1:{base64.b64encode(os.urandom(32)).decode()}"],
        blind_index_key=base64.b64encode(os.urandom(32)).decode(),
        secret_metadata_keys=["author"],
        cache_enabled=False,
    )
    try:
        tenant = store.tenant((await store.create_tenant(f"sealed-{os.urandom(4).hex()}")).id)
        user = await tenant.create_user(display_name="someone")
        conversation = await tenant.create_conversation(user.id)
        [message] = await tenant.add_messages(
            conversation.id, [NewMessage(role="user", content="the parcel arrived", metadata={"author": "Zebulon"})]
        )
        assert message.metadata == {"author": "Zebulon"}
        assert not await tenant.search("Zebulon", mode="fulltext", kinds=("messages",))
        assert not await tenant.search("enc", mode="fulltext", kinds=("messages",))
        [hit] = await tenant.search("parcel", mode="fulltext", kinds=("messages",))
        assert hit.id == message.id and hit.metadata == {"author": "Zebulon"}
    finally:
        await store.close()
