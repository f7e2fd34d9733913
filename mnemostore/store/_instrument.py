"""Timing of the SQL statements an engine runs, for metrics (the HTTP service's database latency histogram).

Engine events fire in the sync layer under both twins (the async engine runs its sync twin in a greenlet), so one
listener serves ``AsyncDatabase`` and ``Database`` alike. The statement's text is never handed out, only its kind,
so an observer cannot leak parameters or content into metrics or logs.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event

__all__ = ["QueryObserver", "observe_queries", "report_query"]

QueryObserver = Callable[[str, float], None]
"""Called with the statement's kind (``select``, ``insert``, ``update``, ``delete``, ``other``) and its seconds."""

_KINDS: Final = frozenset({"select", "insert", "update", "delete"})
_STARTED: Final = "_mnemostore_started"
# Observers by engine, for the statements that run past SQLAlchemy's execution layer (``_routines_async``).
_OBSERVERS: Final[weakref.WeakKeyDictionary[sa.Engine, list[QueryObserver]]] = weakref.WeakKeyDictionary()


def _kind(statement: str) -> str:
    word = statement.lstrip().split(None, 1)[0].lower() if statement.strip() else ""
    # A WITH … statement is a select in the statements the store builds; everything else (BEGIN, PRAGMA,
    # set_config is a SELECT) is grouped so the label stays a small, fixed set.
    if word == "with":
        return "select"
    return word if word in _KINDS else "other"


def observe_queries(engine: Any, observer: QueryObserver) -> None:
    """Call ``observer(kind, seconds)`` after every statement ``engine`` (sync or async) executes.

    Statements that fail are not reported (the error is, by the caller). The observer must be fast and must
    not raise: it runs inside the database call.
    """
    sync_engine: sa.Engine = engine.sync_engine if hasattr(engine, "sync_engine") else engine
    _OBSERVERS.setdefault(sync_engine, []).append(observer)

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        if context is not None:
            setattr(context, _STARTED, time.perf_counter())

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        started = getattr(context, _STARTED, None) if context is not None else None
        if started is not None:
            observer(_kind(statement), time.perf_counter() - started)


def report_query(engine: Any, kind: str, seconds: float) -> None:
    """Report a statement that ran on one of ``engine``'s connections without SQLAlchemy executing it."""
    sync_engine = engine.sync_engine if hasattr(engine, "sync_engine") else engine
    for observer in _OBSERVERS.get(sync_engine, ()):
        observer(kind, seconds)
