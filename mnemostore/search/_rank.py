"""Ranking: reciprocal rank fusion and the recency / importance boosts. Pure functions, no I/O.

Hybrid search asks each retriever (semantic, full text) for a ranked list and fuses them with reciprocal rank
fusion: an item scores ``sum(1 / (k + rank))`` over the lists it appears in (Cormack et al., 2009, k = 60). Ranks,
not raw scores, are fused because a cosine similarity and a BM25 score live on unrelated scales; an item that
both retrievers rank well beats one that only one of them loves.

Boosts multiply the score: ``score * (1 + recency_boost * 0.5 ** (age / half_life)) * (1 + importance_boost *
importance)``, so a boost of 0 changes nothing and the base order decides when items are equally fresh.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

__all__ = ["RRF_K", "boost", "reciprocal_rank_fusion"]

RRF_K = 60
RECENCY_HALF_LIFE_DAYS = 30.0

Key = tuple[str, uuid.UUID]


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[Key]], *, k: int = RRF_K) -> dict[Key, float]:
    """Fused score of every key appearing in any of the ``rankings`` (retriever name -> keys, best first)."""
    fused: dict[Key, float] = {}
    for ranking in rankings.values():
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


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
