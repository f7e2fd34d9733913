"""Persistence: SQLAlchemy tables, repositories, transactions and tenant scope for SQLite and PostgreSQL.

What other packages may use is exported here, plus two public modules: ``tables`` (the schema: ops and
migrations read it) and ``snapshot`` (the analytics readers). ``AsyncDatabase.transaction`` hands out an
``AsyncUnitOfWork`` with every repository (``uow.messages``, ``uow.index_jobs``, ``uow.search`` …); the sync
names are the generated twins. Row -> domain mapping lives here once (``to_message``).
"""

from mnemostore.store._crypto import SEALED_COLUMNS, FieldCodec, KeyRotationReport, envelope_key_id
from mnemostore.store._cursors import decode_cursor, encode_cursor
from mnemostore.store._database import Database
from mnemostore.store._database_async import AsyncDatabase
from mnemostore.store._failures import database_unreachable
from mnemostore.store._index_text import AUTHOR_KEY, indexed_message_text
from mnemostore.store._instrument import QueryObserver, observe_queries
from mnemostore.store._mapping import to_message
from mnemostore.store._outcomes import AppendOutcome, UsageRefused
from mnemostore.store._repositories import UnitOfWork
from mnemostore.store._repositories_async import AsyncUnitOfWork
from mnemostore.store._routines import HotPath
from mnemostore.store._routines_async import AsyncHotPath
from mnemostore.store._search import IndexRepository, SearchRepository
from mnemostore.store._search_async import AsyncIndexRepository, AsyncSearchRepository
from mnemostore.store._search_statements import ClaimedJob, filter_conditions, pg_search_settings

__all__ = [
    "AUTHOR_KEY",
    "SEALED_COLUMNS",
    "AppendOutcome",
    "AsyncDatabase",
    "AsyncHotPath",
    "AsyncIndexRepository",
    "AsyncSearchRepository",
    "AsyncUnitOfWork",
    "ClaimedJob",
    "Database",
    "FieldCodec",
    "HotPath",
    "IndexRepository",
    "KeyRotationReport",
    "QueryObserver",
    "SearchRepository",
    "UnitOfWork",
    "UsageRefused",
    "database_unreachable",
    "decode_cursor",
    "encode_cursor",
    "envelope_key_id",
    "filter_conditions",
    "indexed_message_text",
    "observe_queries",
    "pg_search_settings",
    "to_message",
]
