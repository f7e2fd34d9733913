"""Results and signals of the hot-path routines, shared by both twins (``_routines_async`` and ``_routines``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AppendOutcome", "UsageRefused"]


class UsageRefused(Exception):
    """The tenant's usage refused the charge (a quota, or no usage row): the caller finds out which and says so."""


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    """What an append did: either it wrote every message (``last_seq``: the number of the last one) or, when the
    conversation already held some of their idempotency keys, nothing (``existing``: those keys)."""

    last_seq: int | None
    existing: frozenset[str]
