"""The request id: made (or taken from ``X-Request-ID``) by the middleware, read by handlers and log records."""

from __future__ import annotations

import os
import random
import re
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, Final

__all__ = ["REQUEST_ID", "new_request_id", "request_id_of"]

REQUEST_ID: ContextVar[str | None] = ContextVar("mnemostore_request_id", default=None)

# An incoming id is kept only when it cannot smuggle anything into a log line or a header.
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")

# Request ids need to be unique, not secret: a PRNG seeded once from the OS is enough, and costs no system call
# per request (uuid4 reads os.urandom every time).
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)  # a forked worker must not repeat its parent's ids


def new_request_id(incoming: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is short and plain, else a fresh random one."""
    if incoming and _SAFE_ID.fullmatch(incoming):
        return incoming
    return f"{_ids.getrandbits(128):032x}"


def request_id_of(scope: MutableMapping[str, Any]) -> str:
    state = scope.get("state")
    if isinstance(state, dict) and isinstance(state.get("request_id"), str):
        return str(state["request_id"])
    return REQUEST_ID.get() or "-"
