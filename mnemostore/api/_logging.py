"""Structured logs: one JSON object per line, each with the request id of the request it belongs to.

What is never logged, by construction: message, memory and knowledge content, request bodies, query strings,
API keys (or their prefixes) and ``Authorization`` headers. Access lines carry the method, the route *template*
(``/v1/conversations/{conversation_id}/messages``), status, duration, tenant and key ids. Tracebacks of
unexpected errors keep their frames and exception types but drop the exception messages, which can quote
statement parameters (a driver error carries the SQL and its values).
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Any, Final

from ._context import REQUEST_ID

__all__ = ["JsonFormatter", "logging_config", "safe_traceback"]

# Attributes a log call may add with ``extra=``; anything else on the record stays out of the line.
_FIELDS: Final = (
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "tenant_id",
    "api_key_id",
    "client",
    "error_type",
    "traceback",
)


def safe_traceback(error: BaseException) -> str:
    """The traceback of ``error`` and its causes, with exception types but without their messages."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        parts.append(f"{type(current).__module__}.{type(current).__qualname__}\n{frames}")
        current = current.__cause__ or current.__context__
    return "caused by: ".join(reversed(parts))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, and the request fields present."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if "request_id" not in line:
            request_id = REQUEST_ID.get()
            if request_id is not None:
                line["request_id"] = request_id
        if record.exc_info and record.exc_info[1] is not None:
            line["error_type"] = type(record.exc_info[1]).__name__
            line["traceback"] = safe_traceback(record.exc_info[1])
        return json.dumps(line, default=str, ensure_ascii=False)


def logging_config(level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (and uvicorn ``log_config``) that sends mnemostore's and uvicorn's logs
    to stderr as JSON lines; uvicorn's own access log is off (the service writes its own, without query strings)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "mnemostore.api._logging.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "mnemostore": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
