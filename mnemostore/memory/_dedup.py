"""Near-duplicate detection for ``store_memory``: does a new memory say what an existing one already says?

Pure logic, no I/O (no twin): the store loads the candidates and, when it has an embedder, their vectors; this
module decides.

The rule, in order:

1. **Candidates** are the memories of the same user and the same agent (``None`` matches only ``None``), of the
   same kind, not expired, and not summaries (consolidated segments are never merged into), newest first, at most
   ``Settings.memory_dedup_candidates`` of them.
2. **Exact**: the normalised texts are equal (Unicode NFKC, case-folded, punctuation dropped, whitespace
   collapsed). This holds with or without an embedder.
3. **Semantic** (an embedder is configured): the cosine similarity of the two embeddings is at least
   ``Settings.memory_dedup_threshold`` (default 0.9). The most similar candidate wins.
4. **Textual fallback** (no embedder): the Jaccard index of the two sets of normalised word tokens is at least
   ``Settings.memory_dedup_jaccard`` (default 0.8). It catches reorderings and small edits ("User likes green
   tea" / "user likes green tea a lot" is 0.67: not merged at 0.8), never paraphrases with different words.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DuplicateMatch", "cosine", "find_duplicate", "normalize_text", "token_jaccard", "tokens"]

_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    """NFKC, case-folded, punctuation removed, whitespace collapsed: the form exact matching compares."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", folded)).strip()


def tokens(text: str) -> frozenset[str]:
    """The set of word tokens of the normalised text."""
    return frozenset(_WORD.findall(normalize_text(text)))


def token_jaccard(a: str, b: str) -> float:
    """size of the intersection over size of the union of the word-token sets; 1.0 for two texts without tokens."""
    ta, tb = tokens(a), tokens(b)
    if not ta and not tb:
        return 1.0
    return len(ta & tb) / len(ta | tb)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0.0 when either vector is zero."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def _cosines(vector: Sequence[float], others: Sequence[Sequence[float]]) -> list[float]:
    """``cosine(vector, other)`` for each of ``others``; with numpy (the embeddings extra) in one product, which
    for 200 candidates of 384 dimensions takes well under a millisecond instead of tens in pure Python."""
    if not others:
        return []
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with the embeddings extra
        return [cosine(vector, other) for other in others]
    matrix = np.asarray(others, dtype=np.float64)
    query = np.asarray(vector, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
    dots = matrix @ query
    return [float(d / n) if n else 0.0 for d, n in zip(dots, norms, strict=True)]


@dataclass(frozen=True, slots=True)
class DuplicateMatch:
    """Which candidate matched, how (``exact``, ``semantic`` or ``jaccard``) and with what score."""

    index: int
    method: str
    score: float


def find_duplicate(
    content: str,
    candidates: Sequence[str],
    *,
    vector: Sequence[float] | None = None,
    candidate_vectors: Sequence[Sequence[float]] | None = None,
    threshold: float = 0.9,
    jaccard: float = 0.8,
) -> DuplicateMatch | None:
    """The candidate ``content`` duplicates, or None (see the module docstring for the rule).

    Args:
        content: the text about to be stored.
        candidates: the texts of the candidate memories.
        vector, candidate_vectors: embeddings of ``content`` and of each candidate; when given, the semantic
            rule replaces the textual fallback.
        threshold: cosine similarity from which two memories are the same (semantic rule).
        jaccard: token Jaccard index from which two memories are the same (textual fallback).
    """
    normalised = normalize_text(content)
    for i, candidate in enumerate(candidates):
        if normalize_text(candidate) == normalised:
            return DuplicateMatch(index=i, method="exact", score=1.0)
    best: DuplicateMatch | None = None
    if vector is not None and candidate_vectors is not None:
        for i, score in enumerate(_cosines(vector, candidate_vectors)):
            if score >= threshold and (best is None or score > best.score):
                best = DuplicateMatch(index=i, method="semantic", score=score)
        return best
    for i, candidate in enumerate(candidates):
        score = token_jaccard(content, candidate)
        if score >= jaccard and (best is None or score > best.score):
            best = DuplicateMatch(index=i, method="jaccard", score=score)
    return best
