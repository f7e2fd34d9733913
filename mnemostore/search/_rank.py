"""Ranking: weighted reciprocal rank fusion with a full-text quorum, relative score fusion with neighbour turns
when semantic search is unsure, and the recency / importance boosts. Pure functions, no I/O.

Hybrid search asks each retriever (semantic, full text) for its best ``max(limit, 10)`` items and fuses the lists
with weighted reciprocal rank fusion: an item scores ``sum(weight / (k + rank))`` over the lists it appears in
(Cormack et al., 2009, k = 60; weights 1 and 1 by default, a keyword argument of ``search``). Ranks, not raw
scores, are fused because a cosine similarity, SQLite's BM25 and PostgreSQL's ``ts_rank_cd`` live on unrelated
scales; an item that both retrievers rank well beats one that only one of them loves.

**The quorum.** Full-text search matches *any* query term, so a question that shares no content word with its
answer ("Which mobile device do I use?" / "My phone is a Pixel 8.") still gets a full-text list: messages that
happen to contain "use". Fused as it is, that noise pushes the semantic answer down whenever it lands on an item
the semantic list also holds. So only full-text hits that contain **more than half of the query's terms** (after
stopwords, including the words of asking: "remind me what I told you about ...") enter the fusion; the number
matched is read off the full-text score (``mnemostore.store._search_statements.fulltext_statement``), the same on
both backends. A hit on a rare identifier the user asks for by name ("what did I tell you about KL1732?") passes
(one term of one), and then full text gets the weight it deserves: the embedding model blurs "KL1732" with
"KL1723", exact matching does not. In full-text mode nothing is filtered: any term may match.

What was measured (``benchmarks/bench_retrieval.py``, SQLite, all-MiniLM-L6-v2; see benchmarks/README.md): plain
RRF over 30 candidates lost to semantic alone at every k (R@1 0.82 vs 0.92); fusing 10 candidates, weighting
full text down (0.3-0.5), smaller k (1-20), min-max "relative score" fusion and distribution-based score fusion
each brought hybrid to at most semantic's R@1, never above, because none can tell a full-text hit on a common
word from one on the answer's key term. The quorum can, and with it hybrid beats both retrievers at R@1/5/10
whatever k (1-60) and depth (10-20); full text then needs its full weight (down-weighting it to 0.7 loses the
identifier questions again).
Equal fused scores are frequent (a fact and its distractor swap places between the two lists) and go to the
better semantic rank: PostgreSQL's ``ts_rank_cd`` has no IDF and often puts the distractor first, and with ties
broken by id hybrid fell below semantic at R@1 there (0.894 vs 0.917).

**When semantic search is unsure.** On long real chats (LoCoMo, ``benchmarks/bench_locomo.py``) the quorum
costs: a natural question ("What fields would Caroline pursue in her education?") shares two of its five words with
the turn that answers it, and MiniLM, unsure among hundreds of similar small-talk turns, ranks by noise. What tells
the two situations apart is the shape of the semantic list: its best cosine stands a median 0.39 above its 10th on
the project's benchmark, 0.12 on LoCoMo. So when the best semantic score stands less than ``FLAT_SEMANTIC_SPREAD``
(0.2) above the ``FUSION_DEPTH``-th, hybrid uses relative score fusion instead: the best ``RELATIVE_FUSION_DEPTH``
of each list, their scores min-max normalised, full text weighted 0.6 and semantic 0.4, no quorum.

**Neighbour turns.** In a conversation the answer is often the reply to the turn that matches the question ("Where
did you go hiking?" / "Mount Tamalpais, the views were stunning."), or the turn a matching reply answers. In that
relative fusion each message's semantic score gains ``NEIGHBOUR_SIMILARITY_SHARE`` of the similarity of the
messages just before and after it (among the semantic list's best ``NEIGHBOUR_CANDIDATES``), and each fused score
spreads to those two neighbours, ``NEIGHBOUR_SPREAD`` (0.1 to the turn before, 0.3 to the reply), which enter the
result when no retriever listed them. Measured (benchmarks/README.md, "LoCoMo"): recall@10 65.2 -> 71.3 on
LoCoMo's development half, +4 to +5 points on each half of two splits of it; the project's benchmark loses three
paraphrase questions at recall@1 (0.921 -> 0.903), the price of the wider gate.

**The author the question names.** In a chat of several people a question often names the one it is about
("What did Caroline research?"). When hybrid search ranks messages and the query names, as whole words, exactly
one of the candidates' authors (``metadata.author``), that author's messages score ``1 + NAMED_AUTHOR_BOOST``
times more; the other speakers' turns still come when they match better. Measured on LoCoMo's development half
(benchmarks/README.md): recall@1 34.3 -> 38.4, recall@10 71.3 -> 72.2 on SQLite (+1 on each half of a split) and
69.7 -> 71.5 on PostgreSQL; a query naming nobody, or several authors, is ranked as before.

Boosts multiply the score: ``score * (1 + recency_boost * 0.5 ** (age / half_life)) * (1 + importance_boost *
importance)``, so a boost of 0 changes nothing and the base order decides when items are equally fresh.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from mnemostore.errors import InvalidInput

__all__ = [
    "DEFAULT_WEIGHTS",
    "FUSION_DEPTH",
    "NAMED_AUTHOR_BOOST",
    "NEIGHBOUR_CANDIDATES",
    "RELATIVE_FUSION_DEPTH",
    "RETRIEVERS",
    "RRF_K",
    "boost",
    "fulltext_quorum",
    "fusion_weights_or_raise",
    "named_author",
    "reciprocal_rank_fusion",
    "relative_score_fusion",
    "semantic_is_flat",
    "spread_to_neighbours",
    "terms_matched",
    "with_neighbour_similarity",
]

# Hybrid search of messages: a message by the one author the query names scores (1 + this) times more.
NAMED_AUTHOR_BOOST = 1.0

RRF_K = 60
# Each retriever's list is cut to max(limit, FUSION_DEPTH) before fusing.
FUSION_DEPTH = 10
RECENCY_HALF_LIFE_DAYS = 30.0
RETRIEVERS = ("semantic", "fulltext")
DEFAULT_WEIGHTS: Mapping[str, float] = {"semantic": 1.0, "fulltext": 1.0}

Key = tuple[str, uuid.UUID]


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[Key]], *, k: int = RRF_K, weights: Mapping[str, float] | None = None
) -> dict[Key, float]:
    """Fused score of every key appearing in any of the ``rankings`` (retriever name -> keys, best first).

    ``weights`` (retriever name -> weight, 1 when missing) multiplies each list's contribution; a list of weight
    0 contributes nothing, so its items only appear when another list holds them too.
    """
    fused: dict[Key, float] = {}
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return {key: score for key, score in fused.items() if score > 0}


# Relative score fusion, used when the semantic list is flat: its share of the fused score (full text: the rest).
RELATIVE_SEMANTIC_SHARE = 0.4
# A semantic list whose best cosine is less than this above its FUSION_DEPTH-th is flat (no item stands out).
FLAT_SEMANTIC_SPREAD = 0.2
# Relative score fusion of messages: each list's depth, and how deep semantic search looks for the messages
# whose neighbours' similarity may lift them into it.
RELATIVE_FUSION_DEPTH = 25
NEIGHBOUR_CANDIDATES = 50
# A message's semantic score gains this share of the similarity of each of its two neighbours.
NEIGHBOUR_SIMILARITY_SHARE = 0.2
# The share of a message's fused score passed on to the message just before it and to the one just after it.
NEIGHBOUR_SPREAD = (0.1, 0.3)


def semantic_is_flat(ranking: Sequence[Key], scores: Mapping[Key, float], *, depth: int = FUSION_DEPTH) -> bool:
    """Whether semantic search is unsure for this query: its best similarity stands less than
    ``FLAT_SEMANTIC_SPREAD`` above its ``depth``-th (its last, with fewer hits). An empty list is flat."""
    if not ranking:
        return True
    last = ranking[min(depth, len(ranking)) - 1]
    return scores[ranking[0]] - scores[last] < FLAT_SEMANTIC_SPREAD


def relative_score_fusion(
    lists: Mapping[str, Sequence[Key]],
    scores: Mapping[str, Mapping[Key, float]],
    *,
    weights: Mapping[str, float] | None = None,
) -> dict[Key, float]:
    """Fused score of every key of ``lists``: each retriever's scores min-max normalised to [0, 1] over its list
    (all 1 when they are equal), weighted (full text ``1 - RELATIVE_SEMANTIC_SHARE``, semantic
    ``RELATIVE_SEMANTIC_SHARE``, each times ``weights``) and summed; an item missing from a list gets 0 there."""
    shares = {"semantic": RELATIVE_SEMANTIC_SHARE, "fulltext": 1.0 - RELATIVE_SEMANTIC_SHARE}
    fused: dict[Key, float] = {}
    for name, ranking in lists.items():
        if not ranking:
            continue
        weight = shares.get(name, 0.0) * (1.0 if weights is None else weights.get(name, 1.0))
        values = [scores[name][key] for key in ranking]
        low, high = min(values), max(values)
        for key, value in zip(ranking, values, strict=True):
            normalised = (value - low) / (high - low) if high > low else 1.0
            fused[key] = fused.get(key, 0.0) + weight * normalised
    return fused


def with_neighbour_similarity(
    scores: Mapping[Key, float],
    neighbours: Mapping[Key, tuple[Key | None, Key | None]],
    similarity: Mapping[Key, float],
) -> dict[Key, float]:
    """Each key's score plus ``NEIGHBOUR_SIMILARITY_SHARE`` times the similarity to the query of the item just
    before it and of the one just after it (``neighbours``; ``similarity`` of a neighbour, 0 when unknown)."""
    out: dict[Key, float] = {}
    for key, score in scores.items():
        around = neighbours.get(key, (None, None))
        lift = sum(similarity.get(n, 0.0) for n in around if n is not None)
        out[key] = score + NEIGHBOUR_SIMILARITY_SHARE * lift
    return out


def spread_to_neighbours(
    fused: Mapping[Key, float], neighbours: Mapping[Key, tuple[Key | None, Key | None]]
) -> dict[Key, float]:
    """``fused`` with a share of each key's score (``NEIGHBOUR_SPREAD``) added to the key just before it and to
    the one just after it, which enter the result when they were not in it."""
    before_share, after_share = NEIGHBOUR_SPREAD
    out = dict(fused)
    for key, score in fused.items():
        before, after = neighbours.get(key, (None, None))
        if before is not None:
            out[before] = out.get(before, 0.0) + before_share * score
        if after is not None:
            out[after] = out.get(after, 0.0) + after_share * score
    return out


def named_author(query: str, authors: Iterable[str]) -> str | None:
    """The one name among ``authors`` (the candidates' ``metadata.author``) that ``query`` contains as whole words,
    case-insensitively; None when it names none of them or several (then no author is favoured)."""
    folded = query.casefold()
    named = {
        author
        for author in authors
        if author.strip() and re.search(rf"(?<!\w){re.escape(author.strip().casefold())}(?!\w)", folded)
    }
    return named.pop() if len(named) == 1 else None


def fusion_weights_or_raise(weights: Mapping[str, float] | None) -> dict[str, float]:
    """``DEFAULT_WEIGHTS`` updated with ``weights``; InvalidInput names what is wrong (unknown retriever, a weight
    that is not a finite number of 0 or more, or all weights 0)."""
    merged = dict(DEFAULT_WEIGHTS)
    if weights is None:
        return merged
    if not isinstance(weights, Mapping):
        raise InvalidInput(f"weights must map retriever names to numbers, like {dict(DEFAULT_WEIGHTS)}")
    for name, weight in weights.items():
        if name not in RETRIEVERS:
            raise InvalidInput(f"weights: unknown retriever {name!r}; use {' or '.join(map(repr, RETRIEVERS))}")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
            raise InvalidInput(f"weights[{name!r}] must be a finite number of 0 or more, got {weight!r}")
        merged[name] = float(weight)
    if not any(merged.values()):
        raise InvalidInput("weights: at least one retriever needs a weight above 0")
    return merged


def terms_matched(score: float, terms: int) -> int:
    """How many of ``terms`` query terms a full-text hit of ``score`` contains (see ``fulltext_statement``)."""
    return min(terms, math.floor(score * terms + 1e-9))


def fulltext_quorum(ranking: Sequence[Key], scores: Mapping[Key, float], *, terms: int) -> list[Key]:
    """The full-text hits of ``ranking`` that contain more than half of the query's ``terms``, in order."""
    return [key for key in ranking if 2 * terms_matched(scores[key], terms) > terms]


def boost(
    score: float,
    *,
    created_at: datetime,
    now: datetime,
    importance: float | None,
    recency_boost: float,
    importance_boost: float,
    half_life_days: float = RECENCY_HALF_LIFE_DAYS,
) -> float:
    """``score`` with the recency and importance boosts applied (see the module docstring)."""
    factor = 1.0
    if recency_boost:
        age_days = max(0.0, (now - created_at).total_seconds() / 86400)
        factor *= 1.0 + recency_boost * 0.5 ** (age_days / half_life_days)
    if importance_boost and importance is not None:
        factor *= 1.0 + importance_boost * importance
    return score * factor
