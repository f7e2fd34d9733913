"""Schema objects the search layer keeps outside the SQLAlchemy models, and the filter that hides them from
autogenerate (``env.py`` and the migration tests use it).

They are dialect-specific and made by migrations 0003 (and 0006, for ``graph_items``): SQLite's FTS5 tables
(``<table>_fts`` and their shadow tables; since 0012 ``messages_fts`` indexes the generated ``messages.search_text``),
PostgreSQL's generated ``search_tsv`` columns with their GIN indexes,
pgvector's HNSW indexes, and the ``embeddings.vector`` column, whose type is ``vector`` only where pgvector is
installed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FTS_TABLES", "include_object", "is_search_object"]

FTS_TABLES = ("messages", "memories", "knowledge_chunks", "graph_items")


def is_search_object(name: str | None, type_: str, table_name: str | None = None) -> bool:
    if name is None:
        return False
    if type_ == "table":
        return name.endswith("_fts") or "_fts_" in name
    if type_ == "column":
        return name in ("search_tsv", "search_text") or (table_name, name) == ("embeddings", "vector")
    if type_ == "index":
        return name.startswith("ix_embeddings_hnsw") or name.endswith("_search_tsv")
    return False


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = getattr(getattr(obj, "table", None), "name", None)
    return not is_search_object(name, type_, table)
