"""Search statements: filters, full-text and vector queries for both dialects. Pure SQLAlchemy, no I/O.

Filters narrow: a filter that a kind of item cannot satisfy leaves that kind out (``role`` and
``conversation_id`` concern messages only; ``tier`` and ``agent_id`` memories only; ``user_id`` messages, through
their conversation's owner, and memories). Every statement names ``tenant_id``, like the repositories'.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from mnemostore.search._types import ItemKind
from mnemostore.store._tables import conversations, embeddings, knowledge_chunks, memories, messages

__all__ = [
    "JOB_KIND",
    "TABLES",
    "SearchFilters",
    "fulltext_statement",
    "hydrate_statement",
    "ids_statement",
    "pg_vector_statement",
    "query_terms",
]

TABLES: dict[ItemKind, sa.Table] = {
    ItemKind.MESSAGE: messages,
    ItemKind.MEMORY: memories,
    ItemKind.KNOWLEDGE: knowledge_chunks,
}
# The item_kind value of index_jobs and embeddings rows.
JOB_KIND: dict[ItemKind, str] = {
    ItemKind.MESSAGE: "message",
    ItemKind.MEMORY: "memory",
    ItemKind.KNOWLEDGE: "knowledge",
}

_TERM = re.compile(r"\w+", re.UNICODE)
# English function words, dropped from full-text queries so "to" or "the" cannot match everything. PostgreSQL's
# english configuration drops its own list; SQLite's FTS5 has none.
_STOPWORDS = (
    "a about above after again against all am an and any are as at be because been before being below between "
    "both but by can could did do does doing down during each few for from further had has have having he her "
    "here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not "
    "now of off on once only or other our ours ourselves out over own same she should so some such than that the "
    "their theirs them themselves then there these they this those through to too under until up very was we "
    "were what when where which while who whom why will with would you your yours yourself yourselves"
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

    def applies_to(self, kind: ItemKind) -> bool:
        if kind is not ItemKind.MESSAGE and (self.role is not None or self.conversation_id is not None):
            return False
        if kind is not ItemKind.MEMORY and (self.tier is not None or self.agent_id is not None):
            return False
        return not (kind is ItemKind.KNOWLEDGE and self.user_id is not None)

    @property
    def narrows(self) -> bool:
        """True when the filters keep only part of a kind's rows (so a vector search must respect them)."""
        return any(
            value is not None
            for value in (
                self.user_id,
                self.agent_id,
                self.conversation_id,
                self.tier,
                self.role,
                self.since,
                self.until,
            )
        ) or bool(self.metadata)

    def where(self, kind: ItemKind, tenant_id: uuid.UUID, dialect: str) -> list[sa.ColumnElement[bool]]:
        table = TABLES[kind]
        c = table.c
        conditions: list[sa.ColumnElement[bool]] = [c.tenant_id == tenant_id]
        if kind is ItemKind.MESSAGE:
            if self.conversation_id is not None:
                conditions.append(c.conversation_id == self.conversation_id)
            if self.role is not None:
                conditions.append(c.role == self.role)
            if self.user_id is not None:
                owned = sa.select(conversations.c.id).where(
                    conversations.c.tenant_id == tenant_id, conversations.c.user_id == self.user_id
                )
                conditions.append(c.conversation_id.in_(owned))
        if kind is ItemKind.MEMORY:
            if self.user_id is not None:
                conditions.append(c.user_id == self.user_id)
            if self.agent_id is not None:
                conditions.append(c.agent_id == self.agent_id)
            if self.tier is not None:
                conditions.append(c.tier == self.tier)
        if self.since is not None:
            conditions.append(c.created_at >= self.since)
        if self.until is not None:
            conditions.append(c.created_at < self.until)
        for key, value in self.metadata.items():
            conditions.append(_metadata_equals(table, key, value, dialect))
        return conditions


def _metadata_equals(table: sa.Table, key: str, value: Any, dialect: str) -> sa.ColumnElement[bool]:
    column = table.c.metadata
    if dialect == "postgresql":
        wanted = sa.cast(sa.literal(json.dumps({key: value}), sa.String()), postgresql.JSONB())
        return column.op("@>")(wanted)
    path = '$."' + key.replace('"', '""') + '"'
    kind = sa.func.json_type(column, path)
    if value is None:
        return kind == "null"
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    if isinstance(value, int | float):
        return sa.and_(kind.in_(("integer", "real")), sa.func.json_extract(column, path) == value)
    return sa.and_(kind == "text", sa.func.json_extract(column, path) == value)


def fulltext_statement(
    kind: ItemKind, terms: list[str], filters: SearchFilters, tenant_id: uuid.UUID, dialect: str, limit: int
) -> sa.Select[Any]:
    """(id, score) of the best text matches, best first; any term may match, more matching terms rank higher."""
    table = TABLES[kind]
    where = filters.where(kind, tenant_id, dialect)
    if dialect == "postgresql":
        tsquery = sa.func.to_tsquery(sa.literal_column("'english'::regconfig"), " | ".join(terms))
        tsv: sa.ColumnElement[Any] = sa.literal_column(f"{table.name}.search_tsv")
        score = sa.func.ts_rank_cd(tsv, tsquery)
        return (
            sa.select(table.c.id, score.label("score"))
            .where(*where, tsv.op("@@")(tsquery))
            .order_by(score.desc(), table.c.id)
            .limit(limit)
        )
    fts = sa.table(f"{table.name}_fts", sa.column("rowid"))
    match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
    rank = sa.func.bm25(sa.literal_column(f"{table.name}_fts"))
    return (
        sa.select(table.c.id, (-rank).label("score"))
        .select_from(fts.join(table, sa.literal_column(f"{table.name}.rowid") == fts.c.rowid))
        .where(sa.literal_column(f"{table.name}_fts").op("MATCH")(match), *where)
        .order_by(rank, table.c.id)
        .limit(limit)
    )


def ids_statement(kind: ItemKind, filters: SearchFilters, tenant_id: uuid.UUID, dialect: str) -> sa.Select[Any]:
    """Ids of every row of ``kind`` the filters keep (the allowed set of a filtered embedded vector search)."""
    table = TABLES[kind]
    return sa.select(table.c.id).where(*filters.where(kind, tenant_id, dialect))


def hydrate_statement(
    kind: ItemKind, ids: list[uuid.UUID], filters: SearchFilters, tenant_id: uuid.UUID, dialect: str
) -> sa.Select[Any]:
    """The rows of ``ids`` that still exist and pass the filters, with what a hit shows."""
    table = TABLES[kind]
    columns: list[Any] = [table]
    if kind is ItemKind.MESSAGE:
        columns.append(conversations.c.user_id)
        join = table.join(
            conversations,
            sa.and_(conversations.c.tenant_id == table.c.tenant_id, conversations.c.id == table.c.conversation_id),
        )
        return (
            sa.select(*columns).select_from(join).where(table.c.id.in_(ids), *filters.where(kind, tenant_id, dialect))
        )
    return sa.select(*columns).where(table.c.id.in_(ids), *filters.where(kind, tenant_id, dialect))


class _SizedVector(sa.types.UserDefinedType[Any]):
    """``vector(n)``: the type the HNSW expression index of dimension n is built on."""

    cache_ok = True

    def __init__(self, size: int) -> None:
        self.size = size

    def get_col_spec(self, **kw: Any) -> str:
        return f"vector({self.size})"


def pg_vector_statement(
    kind: ItemKind, filters: SearchFilters, tenant_id: uuid.UUID, *, model: str, dimension: int, limit: int
) -> sa.Select[Any]:
    """(id, cosine similarity) nearest to the bound ``query_vector``, through the HNSW index of ``dimension``.

    The cast matches the partial expression index ``(vector::vector(<dimension>))``, so the planner can use it;
    with ``hnsw.iterative_scan`` the index scan keeps going until ``limit`` rows pass the filters.
    """
    table = TABLES[kind]
    e = embeddings.c
    stored: sa.ColumnElement[Any] = sa.literal_column(f"embeddings.vector::vector({int(dimension)})")
    query = sa.cast(sa.bindparam("query_vector", type_=sa.String()), _SizedVector(int(dimension)))
    distance = stored.op("<=>")(query)
    return (
        sa.select(table.c.id, (1 - distance).label("score"))
        .select_from(embeddings.join(table, sa.and_(table.c.tenant_id == e.tenant_id, table.c.id == e.item_id)))
        .where(
            e.tenant_id == tenant_id,
            e.item_kind == JOB_KIND[kind],
            e.model == model,
            e.dimension == dimension,
            *filters.where(kind, tenant_id, "postgresql"),
        )
        .order_by(distance)
        .limit(limit)
    )
