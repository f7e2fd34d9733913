"""Token counting for context budgets: the ``TokenCounter`` protocol and an offline default.

A context block is cut to a budget of the caller's model's tokens, which only that model's tokenizer counts
exactly. ``ApproxTokenCounter`` estimates them without a tokenizer, a vocabulary file or the network: it splits
the text as the BPE tokenizers of current chat models do (letter runs with their leading space, digit groups of
up to three, punctuation runs, whitespace) and prices each piece by its length. Measured against the
``cl100k_base`` and ``o200k_base`` encodings on conversational English, Markdown prose and Python code, its total
is within a few percent of theirs (see ``README.md``, "Context for an agent"); for an exact budget pass a counter
that wraps the model's own tokenizer (any object with ``count(text) -> int``).
"""

from __future__ import annotations

import math
import re
from typing import Protocol, runtime_checkable

__all__ = ["ApproxTokenCounter", "TokenCounter"]


@runtime_checkable
class TokenCounter(Protocol):
    """Counts the tokens of a text as the caller's model would: ``count(text) -> int`` (0 for ``""``).

    ``build_context`` counts each entry with it, and the whole block again at the end, so a counter whose counts
    do not add up (as no real tokenizer's quite do) still never yields a block over the budget.
    """

    def count(self, text: str) -> int:
        """The number of tokens of ``text``."""
        ...


# The pieces a GPT-style pre-tokenizer cuts text into (cl100k_base's pattern, with Python's classes for
# \p{L} and \p{N}): contractions, a letter run with the one character before it, digits by three, punctuation
# runs with a leading space and trailing newlines, newline runs, other whitespace.
_PIECES = re.compile(
    r"'(?:[sdmt]|ll|ve|re)(?![^\W\d_])"
    r"|[^\r\n\w]?[^\W\d_]+"
    r"|\d{1,3}"
    r"| ?[^\s\w]+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+",
    re.IGNORECASE,
)


# Fitted on conversational English, Markdown and Python against cl100k_base and o200k_base (README.md): an ASCII
# word costs 1 token up to _FREE letters, plus 1/_PER per letter past that; a whitespace run _SPACE; punctuation
# one token per _PUNCT characters.
_FREE, _PER = 8, 4
_SPACE, _PUNCT = 1.0, 2
_CONTRACTIONS = frozenset({"s", "d", "m", "t", "ll", "ve", "re"})


class ApproxTokenCounter:
    """An offline estimate of BPE token counts (``cl100k_base``/``o200k_base`` style), with no dependency.

    Each piece of the pre-tokenised text costs: an ASCII word, 1 token up to 8 letters and a quarter of a token for
    each letter past that (common words are one token, rare long ones split); a word in another script, one token
    per 3 bytes of UTF-8 (CJK: about one per character); a digit group or a contraction, 1; punctuation, one per 2
    characters; a whitespace run, 1 (a single space is free: it joins the next word). The total is rounded up.
    Deterministic, and no dependency.
    """

    def count(self, text: str) -> int:
        """The estimated number of tokens of ``text`` (0 for ``""``)."""
        if not text:
            return 0
        total = 0.0
        for match in _PIECES.finditer(text):
            total += _piece_cost(match.group())
        return max(1, math.ceil(total))

    def __repr__(self) -> str:
        return "ApproxTokenCounter()"


def _piece_cost(piece: str) -> float:
    head = piece[0]
    if head == "'" and len(piece) <= 3 and piece[1:].isalpha() and piece[1:].lower() in _CONTRACTIONS:
        return 1.0
    if head.isalpha() or (len(piece) > 1 and piece[1].isalpha() and not head.isdigit()):
        if head.isalpha():
            word, lead = piece, 0.0
        else:
            word, lead = piece[1:], 0.0 if head == " " else 1.0
        if word.isascii():
            return lead + 1.0 + max(0, len(word) - _FREE) / _PER
        return lead + max(1.0, len(word.encode("utf-8")) / 3)
    if head.isdigit() or head == "'":
        return 1.0
    stripped = piece.strip()
    if not stripped:
        if "\n" in piece or "\r" in piece:
            return 1.0
        return 0.0 if piece == " " else _SPACE
    return max(1.0, len(stripped) / _PUNCT)
