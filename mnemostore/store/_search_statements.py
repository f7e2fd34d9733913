"""Search statements: filter conditions, full-text and vector queries for both dialects. Pure SQLAlchemy, no I/O.

Every statement names ``tenant_id``, like the repositories'. What the filters mean (which kinds of items each
one concerns) is said by ``mnemostore.search.SearchFilters``; this module turns them into conditions.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from mnemostore.search import ItemKind, SearchFilters
from mnemostore.store.tables import (
    OPEN_JOBS,
    conversations,
    embeddings,
    graph_items,
    index_jobs,
    knowledge_chunks,
    memories,
    messages,
)

__all__ = [
    "JOB_KIND",
    "OWNED_KINDS",
    "TABLES",
    "ClaimedJob",
    "allowed_items_statement",
    "allowed_seqs_statement",
    "count_statement",
    "entity_fields_statement",
    "filter_conditions",
    "fulltext_statement",
    "hydrate_statement",
    "message_neighbours_statement",
    "namespace_condition",
    "owned_exact_statement",
    "owners_statement",
    "pg_search_settings",
    "pg_vector_statement",
    "similarities_statement",
    "vector_page_statement",
    "vectors_since_statement",
]

TABLES: dict[ItemKind, sa.Table] = {
    ItemKind.MESSAGE: messages,
    ItemKind.MEMORY: memories,
    ItemKind.KNOWLEDGE: knowledge_chunks,
    ItemKind.GRAPH_ITEM: graph_items,
}


# The item_kind value of index_jobs and embeddings rows.
@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """An indexing job taken by a worker (``IndexRepository.claim``); one class for both twins."""

    tenant_id: uuid.UUID
    id: uuid.UUID
    item_kind: str
    item_id: uuid.UUID
    attempts: int


JOB_KIND: dict[ItemKind, str] = {
    ItemKind.MESSAGE: "message",
    ItemKind.MEMORY: "memory",
    ItemKind.KNOWLEDGE: "knowledge",
    ItemKind.GRAPH_ITEM: "graph_item",
}

# The kinds whose vectors carry their owner (``embeddings.owner_id``): a user filter concerns only them.
OWNED_KINDS = frozenset({ItemKind.MEMORY, ItemKind.MESSAGE})


def filter_conditions(
    filters: SearchFilters, kind: ItemKind, tenant_id: uuid.UUID, dialect: str, *, by_key: bool = False
) -> list[sa.ColumnElement[bool]]:
    """Conditions on ``kind``'s table. ``by_key``: the statement reads rows by primary key, so on SQLite the
    filter columns are written ``+column``, which keeps the planner from scanning a filter's index instead
    (ten memories by id: 8 ms through the user's 2,000-row index range, well under 1 ms by key)."""
    table = TABLES[kind]
    c: Any = table.c
    if by_key and dialect == "sqlite":
        c = _Unindexed(table)
    conditions: list[sa.ColumnElement[bool]] = [c.tenant_id == tenant_id]
    if kind is ItemKind.MESSAGE:
        if filters.conversation_id is not None:
            conditions.append(c.conversation_id == filters.conversation_id)
        if filters.role is not None:
            conditions.append(c.role == filters.role)
        if filters.user_id is not None:
            owned = sa.select(conversations.c.id).where(
                conversations.c.tenant_id == tenant_id, conversations.c.user_id == filters.user_id
            )
            conditions.append(c.conversation_id.in_(owned))
    if kind is ItemKind.MEMORY:
        if filters.user_id is not None:
            conditions.append(c.user_id == filters.user_id)
        if filters.agent_id is not None:
            conditions.append(c.agent_id == filters.agent_id)
        if filters.tier is not None:
            conditions.append(c.tier == filters.tier)
        if filters.conversation_id is not None:
            conditions.append(c.conversation_id == filters.conversation_id)
        if filters.memory_kind is not None:
            conditions.append(c.kind == filters.memory_kind)
        if filters.alive_at is not None:
            conditions.append(sa.or_(c.expires_at.is_(None), c.expires_at > filters.alive_at))
    if kind is ItemKind.GRAPH_ITEM:
        if filters.searching:
            conditions.append(c.content != "")  # put without index: found by namespace and filters, not by query
        if filters.namespace is not None:
            conditions.append(namespace_condition(c.namespace, filters.namespace))
        if filters.alive_at is not None:
            conditions.append(sa.or_(c.expires_at.is_(None), c.expires_at > filters.alive_at))
    if kind is ItemKind.KNOWLEDGE and filters.source is not None:
        conditions.append(c.source == filters.source)
    if filters.since is not None:
        conditions.append(c.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(c.created_at < filters.until)
    for key, value in filters.metadata.items():
        conditions.append(_metadata_equals(table, key, value, dialect))
    return conditions


class _Unindexed:
    """``table.c`` look-alike whose columns render as ``+table.column`` (SQLite then uses no index for them)."""

    def __init__(self, table: sa.Table) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        column = self._table.c[name]
        if name == "tenant_id":
            return column
        return sa.literal_column(f"+{self._table.name}.{column.name}", column.type)


def namespace_condition(column: Any, namespace: str) -> sa.ColumnElement[bool]:
    """``column`` is ``namespace`` or a namespace under it (labels are joined by ".", which no label holds)."""
    pattern = namespace.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"
    return sa.or_(column == namespace, column.like(pattern, escape="\\"))


def _metadata_equals(table: sa.Table, key: str, value: Any, dialect: str) -> sa.ColumnElement[bool]:
    column = table.c.value if table is graph_items else table.c.metadata
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
    """(id, score) of the best text matches, best first: any term may match, more matching terms rank higher.

    The score is ``(matched + rank / (1 + rank)) / len(terms)``: ``matched`` is how many of the query's terms the
    item contains and ``rank`` the dialect's text rank (SQLite's BM25, PostgreSQL's ``ts_rank_cd``, which differ
    in scale and in how much a rare word counts), squashed into [0, 1). So items are ordered by the number of
    terms they match first (coordination level), by text rank among equals, and ``floor(score * len(terms))``
    is the number matched, the same on both backends: hybrid search fuses only items matching most of the
    query (``mnemostore.search._rank``).
    """
    table = TABLES[kind]
    where = filter_conditions(filters, kind, tenant_id, dialect)
    if dialect == "postgresql":
        english: sa.ColumnElement[Any] = sa.literal_column("'english'::regconfig")
        tsquery = sa.func.to_tsquery(english, " | ".join(terms))
        tsv: sa.ColumnElement[Any] = sa.literal_column(f"{table.name}.search_tsv")
        rank: sa.ColumnElement[Any] = sa.cast(sa.func.ts_rank_cd(tsv, tsquery), sa.Float())
        matched: list[sa.ColumnElement[Any]] = [
            sa.cast(tsv.op("@@")(sa.func.to_tsquery(english, term)), sa.Integer()) for term in terms
        ]
        score = _coordination_score(matched, rank)
        return (
            sa.select(table.c.id, score)
            .where(*where, tsv.op("@@")(tsquery))
            .order_by(score.desc(), table.c.id)
            .limit(limit)
        )
    fts_name = f"{table.name}_fts"
    fts = sa.table(fts_name, sa.column("rowid"))
    rowid: sa.ColumnElement[Any] = sa.literal_column(f"{table.name}.rowid")

    def phrase(term: str) -> str:
        return '"' + term.replace('"', '""') + '"'

    def term_matches(term: str) -> sa.ColumnElement[Any]:
        # One FTS lookup per term (SQLite runs each once and probes the rowid list per candidate row).
        term_fts = sa.table(fts_name, sa.column("rowid"))
        rows = sa.select(term_fts.c.rowid).where(sa.literal_column(fts_name).op("MATCH")(phrase(term)))
        return sa.case((rowid.in_(rows.scalar_subquery()), 1), else_=0)

    bm25 = -sa.func.bm25(sa.literal_column(fts_name))  # FTS5's bm25() is negative, lower is better
    score = _coordination_score([term_matches(term) for term in terms], bm25)
    return (
        sa.select(table.c.id, score)
        .select_from(fts.join(table, rowid == fts.c.rowid))
        .where(sa.literal_column(fts_name).op("MATCH")(" OR ".join(phrase(term) for term in terms)), *where)
        .order_by(score.desc(), table.c.id)
        .limit(limit)
    )


def _coordination_score(matched: list[sa.ColumnElement[Any]], rank: sa.ColumnElement[Any]) -> sa.Label[Any]:
    """``(sum(matched) + rank / (rank + 1)) / len(matched)``, labelled ``score`` (ORDER BY uses the label)."""
    total = matched[0]
    for term in matched[1:]:
        total = total + term
    return ((total + rank / (rank + 1.0)) * (1.0 / len(matched))).label("score")


def count_statement(kind: ItemKind, filters: SearchFilters, tenant_id: uuid.UUID, dialect: str, *, cap: int) -> Any:
    """How many rows of ``kind`` the filters keep, counting no further than ``cap`` (a bounded index scan)."""
    table = TABLES[kind]
    capped = sa.select(table.c.id).where(*filter_conditions(filters, kind, tenant_id, dialect)).limit(cap).subquery()
    return sa.select(sa.func.count()).select_from(capped)


def owned_exact_statement(kind: ItemKind, tenant_id: uuid.UUID, owner_id: uuid.UUID, *, max_rows: int) -> Any:
    """Whether one user's vectors of ``kind`` are few enough to rank exactly: at most ``min(max_rows, max(500,
    sqrt(90 * vectors in the table)))``, counted through ``ix_embeddings_owner`` no further than that.

    Ranking exactly reads each of the user's vectors once; the HNSW graph filtered to the user skips about one
    vector per vector it keeps per share of the table the user does not own, so its cost grows with the table over
    the user's count: the two meet where the count grows as the square root of the table. The factor 90 puts the
    bound at ~3,200 of 115,000 vectors; at 2,000 (2%) the two took the same time in benchmarks/bench_search.py
    (11.8 vs 11.7 ms p50 by raw SQL, 3 alternating rounds on a busy 2-CPU machine), and exact wins the tie: it
    is exact, and never cut short by pgvector's ``hnsw.max_scan_tuples``.
    """
    e = embeddings.c
    table_rows = (
        sa.select(sa.func.greatest(sa.literal_column("reltuples"), 0))
        .select_from(sa.table("pg_class"))
        .where(sa.literal_column("oid") == sa.func.to_regclass("embeddings"))
    )
    bound = sa.func.least(max_rows, sa.func.greatest(500, sa.func.sqrt(90 * table_rows.scalar_subquery()))).cast(
        sa.Integer()
    )
    capped = (
        sa.select(sa.literal_column("1").label("one"))
        .select_from(embeddings)
        .where(e.tenant_id == tenant_id, e.owner_id == owner_id, e.item_kind == JOB_KIND[kind])
        .limit(bound + 1)
        .subquery()
    )
    return sa.select(sa.func.count() <= bound).select_from(capped)


def allowed_seqs_statement(
    kind: ItemKind, filters: SearchFilters, tenant_id: uuid.UUID, dialect: str, *, model: str
) -> sa.Select[Any]:
    """The ``seq`` of every vector of ``model`` whose item the filters keep: the allowed set of a filtered
    embedded vector search, as integers the in-process index looks up without building a UUID per row.

    The items are chosen first (through their own indexes, e.g. a user's memories), then their vectors by primary
    key. On SQLite the model test is written ``+model`` so the planner cannot prefer the (tenant, kind, model,
    seq) index, which would visit every vector of the tenant: 1.4 s instead of 10 ms for 2,000 of 100,000.
    """
    table = TABLES[kind]
    e = embeddings.c
    items = sa.select(table.c.id).where(*filter_conditions(filters, kind, tenant_id, dialect))
    same_model = (sa.literal_column("+embeddings.model", sa.String()) if dialect == "sqlite" else e.model) == model
    return sa.select(e.seq).where(
        e.tenant_id == tenant_id, e.item_kind == JOB_KIND[kind], e.item_id.in_(items), same_model
    )


def allowed_items_statement(
    kind: ItemKind, filters: SearchFilters, tenant_id: uuid.UUID, dialect: str, *, model: str
) -> sa.Select[Any]:
    """The ids of the items of ``kind`` that the filters keep and that have a vector of ``model``."""
    table = TABLES[kind]
    e = embeddings.c
    items = sa.select(table.c.id).where(*filter_conditions(filters, kind, tenant_id, dialect))
    same_model = (sa.literal_column("+embeddings.model", sa.String()) if dialect == "sqlite" else e.model) == model
    return sa.select(e.item_id).where(
        e.tenant_id == tenant_id, e.item_kind == JOB_KIND[kind], e.item_id.in_(items), same_model
    )


def owners_statement(kind: ItemKind, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> sa.Select[Any]:
    """(id, owner) of the items ``ids`` of ``kind`` that exist: the user who owns each (memories: their user;
    messages: their conversation's; knowledge chunks and graph items: none), which the indexer writes beside the
    vector (``embeddings.owner_id``) and which never changes."""
    table = TABLES[kind]
    source: Any = table
    if kind is ItemKind.MEMORY:
        owner: Any = table.c.user_id
    elif kind is ItemKind.MESSAGE:
        owner = conversations.c.user_id
        source = table.join(
            conversations,
            sa.and_(conversations.c.tenant_id == table.c.tenant_id, conversations.c.id == table.c.conversation_id),
        )
    else:
        owner = sa.null()
    return (
        sa.select(table.c.id, sa.type_coerce(owner, embeddings.c.owner_id.type).label("owner"))
        .select_from(source)
        .where(table.c.tenant_id == tenant_id, table.c.id.in_(ids))
    )


def _entity_columns(kind: ItemKind) -> tuple[Any, list[Any]]:
    """The item table (joined to its conversation for a message) and the fields of its vector's entity in an
    external vector index (``mnemostore.search.VectorEntity``): ``owner``, ``conversation_id`` and ``role``
    (messages), ``agent_id`` (memories), ``source`` (knowledge), ``created_at``; none of them changes once the item
    is written."""
    table = TABLES[kind]
    source: Any = table
    c = table.c
    none = sa.null()
    if kind is ItemKind.MESSAGE:
        source = table.join(
            conversations,
            sa.and_(conversations.c.tenant_id == c.tenant_id, conversations.c.id == c.conversation_id),
        )
        fields = [conversations.c.user_id, c.conversation_id, c.role, none, none]
    elif kind is ItemKind.MEMORY:
        fields = [c.user_id, none, none, c.agent_id, none]
    elif kind is ItemKind.KNOWLEDGE:
        fields = [none, none, none, none, c.source]
    else:
        fields = [none, none, none, none, none]
    names = ("owner", "conversation_id", "role", "agent_id", "source")
    labelled = [
        sa.type_coerce(field, embeddings.c.owner_id.type).label("owner") if name == "owner" else field.label(name)
        for name, field in zip(names, fields, strict=True)
    ]
    return source, [c.id, c.created_at, *labelled]


def entity_fields_statement(kind: ItemKind, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> sa.Select[Any]:
    """The items ``ids`` of ``kind`` that exist, with their entity's fields (``_entity_columns``) and their vector's
    ``model`` and ``supplied`` (null: no vector yet)."""
    table = TABLES[kind]
    source, columns = _entity_columns(kind)
    e = embeddings.c
    source = source.outerjoin(
        embeddings, sa.and_(e.tenant_id == table.c.tenant_id, e.item_kind == JOB_KIND[kind], e.item_id == table.c.id)
    )
    return (
        sa.select(*columns, e.model, e.supplied)
        .select_from(source)
        .where(table.c.tenant_id == tenant_id, table.c.id.in_(ids))
    )


def vector_page_statement(kind: ItemKind, after: tuple[uuid.UUID, uuid.UUID] | None, limit: int) -> sa.Select[Any]:
    """Up to ``limit`` vectors of items of ``kind`` (every tenant's), in (tenant, item) order after ``after``, with
    their model, dimension and entity fields: what an external vector index is rebuilt from."""
    table = TABLES[kind]
    source, columns = _entity_columns(kind)
    e = embeddings.c
    source = source.join(
        embeddings, sa.and_(e.tenant_id == table.c.tenant_id, e.item_kind == JOB_KIND[kind], e.item_id == table.c.id)
    )
    query = (
        sa.select(e.tenant_id, *columns, e.model, e.dimension, e.vector)
        .select_from(source)
        .order_by(e.tenant_id, e.item_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(sa.tuple_(e.tenant_id, e.item_id) > sa.tuple_(*after))
    return query


@functools.cache
def vectors_since_statement(kind: ItemKind) -> sa.Select[Any]:
    """(item_id, seq, vector, owner) of the vectors of the bound ``model`` and ``tenant_id`` with ``seq`` above
    the bound ``after_seq``, in seq order: what the embedded index has not read yet, with the user who owns each
    item (``embeddings.owner_id``: no join to the items). Built once per kind: it runs before every embedded
    search."""
    e = embeddings.c
    return (
        sa.select(e.item_id, e.seq, e.vector, e.owner_id.label("owner"))
        .where(
            e.tenant_id == sa.bindparam("tenant_id", type_=e.tenant_id.type),
            e.item_kind == JOB_KIND[kind],
            e.model == sa.bindparam("model", type_=e.model.type),
            e.seq > sa.bindparam("after_seq", type_=sa.BigInteger()),
        )
        .order_by(e.seq)
    )


def hydrate_statement(
    kind: ItemKind,
    ids: list[uuid.UUID],
    filters: SearchFilters,
    tenant_id: uuid.UUID,
    dialect: str,
    *,
    model: str | None = None,
) -> sa.Select[Any]:
    """The rows of ``ids`` that still exist and pass the filters, with what a hit shows. ``model``: only items
    whose vector is still of that model (an in-process index may hold a vector replaced since by another model's,
    or dropped with the caller's vector of an old text)."""
    table = TABLES[kind]
    filters_and_model: list[sa.ColumnElement[bool]] = []
    if model is not None:
        e = embeddings.c
        filters_and_model.append(
            sa.exists().where(
                e.tenant_id == tenant_id, e.item_kind == JOB_KIND[kind], e.item_id == table.c.id, e.model == model
            )
        )
    columns: list[Any] = [table]
    if kind is ItemKind.MESSAGE:
        columns.append(conversations.c.user_id)
        join = table.join(
            conversations,
            sa.and_(conversations.c.tenant_id == table.c.tenant_id, conversations.c.id == table.c.conversation_id),
        )
        return (
            sa.select(*columns)
            .select_from(join)
            .where(
                table.c.id.in_(ids),
                *filter_conditions(filters, kind, tenant_id, dialect, by_key=True),
                *filters_and_model,
            )
        )
    return sa.select(*columns).where(
        table.c.id.in_(ids), *filter_conditions(filters, kind, tenant_id, dialect, by_key=True), *filters_and_model
    )


class _SizedVector(sa.types.UserDefinedType[Any]):
    """``vector(n)``: the type the HNSW expression index of dimension n is built on.

    A parameter of this type is sent as ``$n::vector(n)``, so PostgreSQL converts the query vector once per
    execution. Sent as text and cast in the statement, a prepared statement's generic plan re-parsed the 384
    numbers for every row it ranked: 138 ms instead of ~15 ms for a user's 2,000 memories.
    """

    cache_ok = True
    render_bind_cast = True

    def __init__(self, size: int) -> None:
        self.size = size

    def get_col_spec(self, **kw: Any) -> str:
        return f"vector({self.size})"


def pg_vector_statement(
    kind: ItemKind, filters: SearchFilters, tenant_id: uuid.UUID, *, dimension: int, exact: bool = False
) -> sa.Select[Any]:
    """The rows nearest to the bound ``query_vector`` (of the bound ``tenant_id``, ``model``; at most
    ``row_limit``), with their cosine similarity (``score``) and what a hit shows (as ``hydrate_statement``), so a
    search reads them once, and the tenant's items waiting for the indexer (``waiting``). Without filters the
    statement is built once per kind and dimension.

    Approximate (default): the order matches the partial expression index ``(vector::vector(<dimension>))``, so
    the planner walks the HNSW graph; with ``hnsw.iterative_scan`` the walk goes on until ``row_limit`` rows pass
    the filters. ``exact``: the order is written so that no index matches it, so PostgreSQL selects the filtered
    rows through their own indexes and ranks every one of them, which is exact and, when the filters keep few
    rows, cheaper than a walk that has to skip most of what it visits.
    """
    if not filters.narrows:
        return _pg_vector_unfiltered(kind, int(dimension), exact)
    if filters.only_user and kind in OWNED_KINDS:
        return _pg_vector_owned(kind, int(dimension), exact)
    conditions = filter_conditions(filters, kind, tenant_id, "postgresql")
    if filters.user_id is not None and kind in OWNED_KINDS:
        conditions.append(embeddings.c.owner_id == filters.user_id)
    return _pg_vector(kind, int(dimension), exact, tuple(conditions))


@functools.cache
def _pg_vector_owned(kind: ItemKind, dimension: int, exact: bool) -> sa.Select[Any]:
    """One user's nearest items (the bound ``owner_id``): the nearest of the user's vectors first, from
    ``embeddings`` alone (through ``ix_embeddings_owner`` when exact, the HNSW graph otherwise), then only those
    ``row_limit`` rows joined to their items; the items' owner is checked again on them. Built once per kind."""
    table = TABLES[kind]
    e = embeddings.c
    tenant = sa.bindparam("tenant_id", type_=e.tenant_id.type)
    owner = sa.bindparam("owner_id", type_=e.owner_id.type)
    distance = _distance(dimension)
    nearest = (
        sa.select(e.item_id, distance.label("distance"))
        .where(*_vector_scope(kind, dimension), e.owner_id == owner)
        .order_by(distance + 0 if exact else distance)
        .limit(sa.bindparam("row_limit", type_=sa.Integer()))
        .subquery("nearest")
    )
    source: Any = nearest.join(table, sa.and_(table.c.tenant_id == tenant, table.c.id == nearest.c.item_id))
    columns: list[Any] = [table, (sa.literal_column("1") - nearest.c.distance).label("score"), _waiting()]
    if kind is ItemKind.MESSAGE:
        columns.append(conversations.c.user_id)
        source = source.join(
            conversations,
            sa.and_(conversations.c.tenant_id == table.c.tenant_id, conversations.c.id == table.c.conversation_id),
        )
        owned = conversations.c.user_id == owner
    else:
        owned = table.c.user_id == owner
    return sa.select(*columns).select_from(source).where(owned).order_by(nearest.c.distance)


def _waiting() -> sa.Label[Any]:
    """The tenant's items waiting for the indexer (``waiting``, the same on every row): read-your-writes search
    learns it from the vector query itself instead of a statement of its own (one index probe, run once)."""
    j = index_jobs.c
    count = (
        sa.select(sa.func.count())
        .select_from(index_jobs)
        .where(j.tenant_id == sa.bindparam("tenant_id", type_=j.tenant_id.type), sa.text(OPEN_JOBS))
    )
    return count.scalar_subquery().label("waiting")


def _distance(dimension: int) -> sa.ColumnElement[Any]:
    """Cosine distance between the stored vector, as the HNSW index of ``dimension`` sees it, and the bound
    ``query_vector``."""
    stored: sa.ColumnElement[Any] = sa.literal_column(f"embeddings.vector::vector({dimension})")
    return stored.op("<=>")(sa.bindparam("query_vector", type_=_SizedVector(dimension)))


def _vector_scope(kind: ItemKind, dimension: int) -> list[sa.ColumnElement[bool]]:
    e = embeddings.c
    return [
        e.tenant_id == sa.bindparam("tenant_id", type_=e.tenant_id.type),
        # Literals, not parameters: the HNSW index is partial (WHERE dimension = n), and a prepared statement's
        # generic plan can use it only when the statement itself says so. With a parameter every execution
        # was planned anew (psycopg prepares a statement after 5 runs): ~1 ms of a 4 ms search.
        e.item_kind == sa.literal_column(f"'{JOB_KIND[kind]}'"),
        e.model == sa.bindparam("model", type_=e.model.type),
        e.dimension == sa.literal_column(str(dimension)),
    ]


@functools.cache
def _pg_vector_unfiltered(kind: ItemKind, dimension: int, exact: bool) -> sa.Select[Any]:
    return _pg_vector(kind, dimension, exact, ())


def _pg_vector(
    kind: ItemKind, dimension: int, exact: bool, conditions: tuple[sa.ColumnElement[bool], ...]
) -> sa.Select[Any]:
    table = TABLES[kind]
    e = embeddings.c
    distance = _distance(dimension)
    order = distance + 0 if exact else distance
    source = embeddings.join(table, sa.and_(table.c.tenant_id == e.tenant_id, table.c.id == e.item_id))
    columns: list[Any] = [table, (sa.literal_column("1") - distance).label("score"), _waiting()]
    if kind is ItemKind.MESSAGE:
        columns.append(conversations.c.user_id)
        source = source.join(
            conversations,
            sa.and_(conversations.c.tenant_id == table.c.tenant_id, conversations.c.id == table.c.conversation_id),
        )
    return (
        sa.select(*columns)
        .select_from(source)
        .where(
            *_vector_scope(kind, dimension),
            table.c.tenant_id == sa.bindparam("tenant_id", type_=e.tenant_id.type),
            *conditions,
        )
        .order_by(order)
        .limit(sa.bindparam("row_limit", type_=sa.Integer()))
    )


def pg_search_settings(ef_search: int, limit: int) -> dict[str, str]:
    """Transaction settings of a pgvector search: the HNSW search breadth, and iterative index scans, which keep
    reading the index until ``limit`` rows pass the filters instead of returning fewer."""
    return {"hnsw.ef_search": str(max(int(ef_search), int(limit))), "hnsw.iterative_scan": "relaxed_order"}


def message_neighbours_statement(ids: list[uuid.UUID], tenant_id: uuid.UUID) -> sa.Select[Any]:
    """(id, before, after) of each message of ``ids``: the ids of the messages just before and just after it in
    its conversation (by sequence number, so a deleted message leaves no hole), NULL at either end. One probe of
    the (tenant, conversation, seq) key per neighbour."""
    m = messages.alias("m")

    def neighbour(after: bool) -> sa.ScalarSelect[Any]:
        n = messages.alias("n")
        side = n.c.seq > m.c.seq if after else n.c.seq < m.c.seq
        order = n.c.seq.asc() if after else n.c.seq.desc()
        return (
            sa.select(n.c.id)
            .where(n.c.tenant_id == m.c.tenant_id, n.c.conversation_id == m.c.conversation_id, side)
            .order_by(order)
            .limit(1)
            .scalar_subquery()
        )

    return sa.select(m.c.id, neighbour(False).label("before"), neighbour(True).label("after")).where(
        m.c.tenant_id == tenant_id, m.c.id.in_(ids)
    )


def similarities_statement(kind: ItemKind, ids: list[uuid.UUID], dialect: str, dimension: int) -> sa.Select[Any]:
    """(item_id, score) on PostgreSQL, the cosine similarity of each item of ``ids`` to the bound
    ``query_vector``; (item_id, vector) on SQLite, whose float32 bytes the caller compares. Items without a vector
    of the bound ``model`` are left out."""
    e = embeddings.c
    where = [*_vector_scope(kind, dimension), e.item_id.in_(ids)]
    if dialect == "postgresql":
        score: sa.Label[Any] = (sa.literal_column("1") - _distance(dimension)).label("score")
        return sa.select(e.item_id, score).where(*where)
    return sa.select(e.item_id, e.vector).where(*where)
