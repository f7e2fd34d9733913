"""What a search asks for, before any SQL: the query's terms and the filters. Pure, no I/O.

Filters narrow: a filter that a kind of item cannot satisfy leaves that kind out (``role`` concerns messages
only; ``conversation_id`` messages and the memories stored from the conversation; ``tier``, ``agent_id`` and
``memory_kind`` memories only; ``source`` knowledge only; ``user_id`` messages, through their conversation's
owner, and memories). The SQL conditions of the filters are
built by the store (``mnemostore.store.filter_conditions``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mnemostore.search._types import ItemKind

__all__ = ["STOPWORDS", "SearchFilters", "query_terms"]

_TERM = re.compile(r"\w+", re.UNICODE)
# English function words, dropped from full-text queries so "to" or "the" cannot match everything. PostgreSQL's
# english configuration drops its own list; SQLite's FTS5 has none. The second part are the words of *asking an
# assistant* ("remind me what I told you about KL1732"): they say nothing of what is looked for, and would count
# as query terms that the answer does not contain (see ``fulltext_statement``).
_STOPWORDS = (
    "a about above after again against all am an and any are as at be because been before being below between "
    "both but by can could did do does doing down during each few for from further had has have having he her "
    "here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not "
    "now of off on once only or other our ours ourselves out over own same she should so some such than that the "
    "their theirs them themselves then there these they this those through to too under until up very was we "
    "were what when where which while who whom why will with would you your yours yourself yourselves "
    "again anything please recall remember remind said say tell told"
)
STOPWORDS = frozenset(_STOPWORDS.split())


def query_terms(query: str, *, limit: int = 32) -> list[str]:
    """The words of a query, lower-cased and de-duplicated: full-text search matches any of them."""
    seen: dict[str, None] = {}
    for term in _TERM.findall(query.lower()):
        if term not in STOPWORDS:
            seen.setdefault(term, None)
    return list(seen)[:limit]


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchFilters:
    user_id: uuid.UUID | None = None
    agent_id: str | None = None
    conversation_id: uuid.UUID | None = None
    tier: str | None = None
    role: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Graph items only: the namespace (labels joined by ".") they are in or under, and the time they must be
    # alive at (not expired). ``metadata`` then matches their value.
    namespace: str | None = None
    alive_at: datetime | None = None
    # False for a plain listing of graph items, which also returns those without indexed text.
    searching: bool = True
    source: str | None = None
    # Memories only: their kind (fact, preference, ...). ``alive_at`` applies to memories too (their expires_at).
    memory_kind: str | None = None

    def applies_to(self, kind: ItemKind) -> bool:
        if kind is not ItemKind.MESSAGE and self.role is not None:
            return False
        if kind not in (ItemKind.MESSAGE, ItemKind.MEMORY) and self.conversation_id is not None:
            return False
        if kind is not ItemKind.MEMORY and self.memory_kind is not None:
            return False
        if kind is not ItemKind.KNOWLEDGE and self.source is not None:
            return False
        if kind is not ItemKind.MEMORY and (self.tier is not None or self.agent_id is not None):
            return False
        if kind is not ItemKind.GRAPH_ITEM and self.namespace is not None:
            return False
        if kind not in (ItemKind.GRAPH_ITEM, ItemKind.MEMORY) and self.alive_at is not None:
            return False
        return not (kind in (ItemKind.KNOWLEDGE, ItemKind.GRAPH_ITEM) and self.user_id is not None)

    @property
    def narrows(self) -> bool:
        """True when the filters keep only part of a kind's rows (so a vector search must respect them)."""
        return self.user_id is not None or self._beyond_user

    @property
    def only_user(self) -> bool:
        """True when the only filter is ``user_id`` (the scope the embedded index answers in memory)."""
        return self.user_id is not None and not self._beyond_user

    @property
    def _beyond_user(self) -> bool:
        others = (
            self.agent_id,
            self.conversation_id,
            self.tier,
            self.role,
            self.since,
            self.until,
            self.namespace,
            self.alive_at,
            self.source,
            self.memory_kind,
        )
        return any(value is not None for value in others) or bool(self.metadata)
