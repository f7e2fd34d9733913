"""Results and signals of the hot-path routines, shared by both twins (``_routines_async`` and ``_routines``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AppendOutcome", "UsageRefused"]


class UsageRefused(Exception):
    """The tenant's usage refused the charge (a quota, or no usage row): the caller finds out which and says so."""


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    """What an append wrote: the number of its last fresh message, and the keys the conversation already held."""

    last_seq: int | None
    existing: frozenset[str]
