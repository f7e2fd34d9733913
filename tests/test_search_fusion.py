"""Hybrid fusion: weighted reciprocal rank fusion with the full-text quorum (``mnemostore.search._rank``), the
coordination-level full-text score it reads, and hybrid ranking on both vector backends with the real model.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator

import pytest

from mnemostore import AsyncMnemoStore, AsyncTenantStore, InvalidInput
from mnemostore.search import Embedder, query_terms
from mnemostore.search._rank import (
    DEFAULT_WEIGHTS,
    fulltext_quorum,
    fusion_weights_or_raise,
    reciprocal_rank_fusion,
    relative_score_fusion,
    semantic_is_flat,
    terms_matched,
)

A, B, C = (("messages", uuid.UUID(int=i)) for i in (1, 2, 3))


def test_weighted_rrf() -> None:
    fused = reciprocal_rank_fusion({"semantic": [A, B], "fulltext": [B, C]}, k=60)
    assert fused[B] == pytest.approx(1 / 62 + 1 / 61) and fused[A] == pytest.approx(1 / 61)
    weighted = reciprocal_rank_fusion({"semantic": [A, B], "fulltext": [C]}, weights={"fulltext": 0.5}, k=1)
    assert weighted == {A: pytest.approx(0.5), B: pytest.approx(1 / 3), C: pytest.approx(0.25)}
    # A list of weight 0 adds nothing, not even its own items.
    assert set(reciprocal_rank_fusion({"semantic": [A], "fulltext": [C]}, weights={"fulltext": 0})) == {A}


def test_quorum_keeps_hits_with_most_of_the_query() -> None:
    # Scores as fulltext_statement makes them: (matched + rank / (1 + rank)) / terms.
    scores = {A: (1 + 0.9) / 3, B: (2 + 0.1) / 3, C: (3 + 0.0) / 3}
    assert [terms_matched(scores[key], 3) for key in (A, B, C)] == [1, 2, 3]
    assert fulltext_quorum([A, B, C], scores, terms=3) == [B, C]
    assert fulltext_quorum([A, B], {A: 1.5, B: 0.9}, terms=2) == [A]  # half is not enough
    assert fulltext_quorum([A], {A: 1.2}, terms=1) == [A]  # one rare token asked for by name


def test_weights_are_validated() -> None:
    assert fusion_weights_or_raise(None) == DEFAULT_WEIGHTS
    assert fusion_weights_or_raise({"fulltext": 0.5}) == {"semantic": 1.0, "fulltext": 0.5}
    for bad, message in (
        ({"bm25": 1.0}, "unknown retriever 'bm25'"),
        ({"semantic": -1}, "finite number of 0 or more"),
        ({"semantic": math.nan}, "finite number"),
        ({"semantic": "1"}, "finite number"),
        ({"semantic": 0, "fulltext": 0}, "at least one retriever"),
    ):
        with pytest.raises(InvalidInput, match=message):
            fusion_weights_or_raise(bad)  # type: ignore[arg-type]


def test_asking_words_are_not_query_terms() -> None:
    assert query_terms("Remind me, what did I tell you about KL1732?") == ["kl1732"]
    assert query_terms("Do you remember anything about order 48213?") == ["order", "48213"]


@pytest.fixture(scope="module")
async def fusion_store(vector_url: str, minilm: Embedder) -> AsyncIterator[AsyncMnemoStore]:
    store = AsyncMnemoStore(vector_url, embedder=minilm)
    yield store
    await store.close()


@pytest.fixture(scope="module")
async def chat(fusion_store: AsyncMnemoStore) -> tuple[AsyncTenantStore, dict[str, uuid.UUID]]:
    t = fusion_store.tenant((await fusion_store.create_tenant(f"fusion-{uuid.uuid4().hex[:12]}")).id)
    user = await t.create_user(display_name="Ada")
    conv = await t.create_conversation(user.id, title="chat")
    texts = {
        "parcel": "The tracking number of my new headphones is JD0147.",
        "other_parcel": "The tracking number of my sister's parcel is JD0174.",
        "phone": "My phone is a Pixel 8.",
        "wifi": "The wifi at the library uses the password readmore1.",
        "dog": "My dog is called Rex.",
        "neighbour": "My neighbour's dog barks all night.",
        "talk": "Honestly, the weather keeps surprising me.",
    }
    ids = {name: (await t.add_message(conv.id, role="user", content=text)).id for name, text in texts.items()}
    await t.wait_for_indexing(timeout_seconds=120)
    return t, ids


async def test_fulltext_score_counts_matched_terms(chat: tuple[AsyncTenantStore, dict[str, uuid.UUID]]) -> None:
    t, ids = chat
    hits = await t.search("dog called", mode="fulltext", limit=5)
    assert [h.id for h in hits] == [ids["dog"], ids["neighbour"]]
    assert [terms_matched(h.score, 2) for h in hits] == [2, 1]


async def test_hybrid_finds_the_identifier_asked_for(chat: tuple[AsyncTenantStore, dict[str, uuid.UUID]]) -> None:
    t, ids = chat
    hits = await t.search("What was JD0147 again?", mode="hybrid", limit=5)
    assert hits[0].id == ids["parcel"] and hits[0].ranks["fulltext"] == 1


async def test_one_common_word_does_not_outrank_meaning(chat: tuple[AsyncTenantStore, dict[str, uuid.UUID]]) -> None:
    t, ids = chat
    fulltext = await t.search("Which mobile device do I use?", mode="fulltext", limit=5)
    assert [h.id for h in fulltext] == [ids["wifi"]]  # "use" matches "uses": full-text mode keeps it
    hybrid = await t.search("Which mobile device do I use?", mode="hybrid", limit=5)
    assert hybrid[0].id == ids["phone"]
    wifi = next((h for h in hybrid if h.id == ids["wifi"]), None)
    assert wifi is None or wifi.score == pytest.approx(1 / (60 + wifi.ranks["semantic"]))


async def test_weights_reorder_hybrid(chat: tuple[AsyncTenantStore, dict[str, uuid.UUID]]) -> None:
    t, _ = chat
    semantic = await t.search("What was JD0174 again?", mode="semantic", limit=5)
    only_semantic = await t.search("What was JD0174 again?", mode="hybrid", limit=5, weights={"fulltext": 0})
    assert [h.id for h in only_semantic] == [h.id for h in semantic]
    with pytest.raises(InvalidInput, match="unknown retriever"):
        await t.search("JD0174", mode="hybrid", weights={"vector": 1.0})


def test_a_flat_semantic_list_is_told_apart() -> None:
    keys = [("messages", uuid.UUID(int=i)) for i in range(12)]
    confident = {key: 0.8 - (0.3 if i else 0.0) - 0.001 * i for i, key in enumerate(keys)}
    flat = {key: 0.6 - 0.005 * i for i, key in enumerate(keys)}
    assert not semantic_is_flat(keys, confident) and semantic_is_flat(keys, flat)
    assert semantic_is_flat([], {})
    assert not semantic_is_flat(keys[:2], {keys[0]: 0.9, keys[1]: 0.5})  # fewer hits than the depth: the last


def test_relative_score_fusion_lets_the_surer_list_lead() -> None:
    # Full text sure of A (all its words), semantic flat: A first, then what both hold, then the rest.
    lists = {"fulltext": [A, B], "semantic": [C, B, A]}
    scores = {"fulltext": {A: 0.99, B: 0.5}, "semantic": {C: 0.61, B: 0.60, A: 0.59}}
    fused = relative_score_fusion(lists, scores)
    assert fused == {A: pytest.approx(0.6), B: pytest.approx(0.2), C: pytest.approx(0.4)}
    assert relative_score_fusion(lists, scores, weights={"fulltext": 0})[C] == pytest.approx(0.4)
    assert relative_score_fusion({"fulltext": [A], "semantic": []}, {"fulltext": {A: 0.3}, "semantic": {}}) == {
        A: pytest.approx(0.6)
    }
