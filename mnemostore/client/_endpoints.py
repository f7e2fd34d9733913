"""Every operation of the HTTP service the client calls, and how it may be called.

Each public method of the client declares the operation it calls with ``@calls(ENDPOINT)``; the tests compare
those declarations with the service's ``/openapi.json``, so that a route without a client method fails them.

``retry`` says whether a failed attempt may be sent again (on a dropped connection, 502/503/504, 429): reads
(GET), deletes by id (a second DELETE finds nothing to delete), searches (POSTs that only read) and appends (the
client always sends an ``Idempotency-Key``, so a second attempt returns the first one's messages). Other writes
are sent once: a retry could write twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

__all__ = ["ENDPOINTS", "Endpoint", "calls", "endpoint_of"]

F = TypeVar("F", bound=Callable[..., Any])

_ATTRIBUTE: Final = "__mnemostore_endpoint__"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One operation: ``method`` and ``path`` as in the service's OpenAPI document (``{name}`` placeholders)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    auth: Literal["tenant", "admin", "none"] = "tenant"
    retry: bool = False

    @property
    def operation(self) -> tuple[str, str]:
        return self.method, self.path


def _get(path: str, auth: Literal["tenant", "admin", "none"] = "tenant") -> Endpoint:
    return Endpoint("GET", path, auth, retry=True)


def _delete(path: str, auth: Literal["tenant", "admin", "none"] = "tenant", *, retry: bool = True) -> Endpoint:
    return Endpoint("DELETE", path, auth, retry=retry)


def _post(path: str, auth: Literal["tenant", "admin", "none"] = "tenant", *, retry: bool = False) -> Endpoint:
    return Endpoint("POST", path, auth, retry=retry)


def _patch(path: str, auth: Literal["tenant", "admin", "none"] = "tenant") -> Endpoint:
    return Endpoint("PATCH", path, auth)


def _put(path: str, auth: Literal["tenant", "admin", "none"] = "tenant") -> Endpoint:
    return Endpoint("PUT", path, auth)


# -- operations (probes) ---------------------------------------------------------------------------------------
HEALTHZ = _get("/healthz", "none")
READYZ = _get("/readyz", "none")

# -- tenants (admin key) ---------------------------------------------------------------------------------------
TENANTS = "/v1/tenants"
TENANT = "/v1/tenants/{tenant_id}"
CREATE_TENANT = _post(TENANTS, "admin")
LIST_TENANTS = _get(TENANTS, "admin")
GET_TENANT = _get(TENANT, "admin")
UPDATE_TENANT = _patch(TENANT, "admin")
DELETE_TENANT = _delete(TENANT, "admin")
GET_TENANT_USAGE = _get(TENANT + "/usage", "admin")
CREATE_TENANT_API_KEY = _post(TENANT + "/api-keys", "admin")
LIST_TENANT_API_KEYS = _get(TENANT + "/api-keys", "admin")
REVOKE_TENANT_API_KEY = _delete(TENANT + "/api-keys/{key_id}", "admin")
GET_TENANT_BY_NAME = _get(TENANTS + "/lookup", "admin")
RECOUNT_TENANT_USAGE = _post(TENANT + "/usage/recount", "admin")
FLUSH_CACHE = _post(TENANT + "/cache/flush", "admin")
RUN_MAINTENANCE = _post(TENANT + "/maintenance", "admin")
SET_GLOBAL_FEATURE_FLAG = _put("/v1/admin/feature-flags/{flag}", "admin")
DELETE_GLOBAL_FEATURE_FLAG = _delete("/v1/admin/feature-flags/{flag}", "admin")

# -- the key's own tenant --------------------------------------------------------------------------------------
GET_OWN_TENANT = _get("/v1/tenant")
INDEXING_STATUS = _get("/v1/indexing")
EXPORT = _get("/v1/export")

# -- the tenant's own API keys ---------------------------------------------------------------------------------
CREATE_API_KEY = _post("/v1/api-keys")
LIST_API_KEYS = _get("/v1/api-keys")
REVOKE_API_KEY = _delete("/v1/api-keys/{key_id}")

# -- users -----------------------------------------------------------------------------------------------------
USER = "/v1/users/{user_id}"
CREATE_USER = _post("/v1/users")
LIST_USERS = _get("/v1/users")
RESOLVE_USER = _post("/v1/users/resolve")
GET_USER = _get(USER)
UPDATE_USER = _patch(USER)
DELETE_USER = _delete(USER)
LIST_IDENTITIES = _get(USER + "/identities")
LINK_IDENTITY = _post(USER + "/identities")
RESOLVE_USER_BY_EMAIL = _post("/v1/users/resolve/email")
RESOLVE_USER_BY_EXTERNAL_ID = _post("/v1/users/resolve/external-id")
LOOKUP_USER = _get("/v1/users/lookup")
ERASE_USER = _post(USER + "/erase")

# -- conversations, messages, events, checkpoints --------------------------------------------------------------
CONVERSATION = "/v1/conversations/{conversation_id}"
CREATE_CONVERSATION = _post("/v1/conversations")
LIST_CONVERSATIONS = _get("/v1/conversations")
IMPORT_CONVERSATION = _post("/v1/conversations/import")
GET_CONVERSATION = _get(CONVERSATION)
UPDATE_CONVERSATION = _patch(CONVERSATION)
DELETE_CONVERSATION = _delete(CONVERSATION)
ARCHIVE_CONVERSATION = _post(CONVERSATION + "/archive")
GET_CONVERSATION_STATS = _get(CONVERSATION + "/stats")
EXPORT_CONVERSATION = _get(CONVERSATION + "/export")
RESOLVE_CONVERSATION = _post("/v1/conversations/resolve")
LOOKUP_CONVERSATION = _get("/v1/conversations/lookup")
CONSOLIDATE_CONVERSATION = _post(CONVERSATION + "/consolidate")
# Builds a block from what is stored, writing only recall counts (as a search does): sent again when lost.
BUILD_CONTEXT = _post(CONVERSATION + "/context", retry=True)
COUNT_MESSAGES = _get(CONVERSATION + "/messages/count")
# Clearing a conversation again after a lost answer would report 0 deleted: sent once.
DELETE_MESSAGES = _delete(CONVERSATION + "/messages", retry=False)
APPEND_MESSAGE = _post(CONVERSATION + "/messages", retry=True)
APPEND_MESSAGES = _post(CONVERSATION + "/messages/batch", retry=True)
GET_HISTORY = _get(CONVERSATION + "/messages")
GET_MESSAGE = _get("/v1/messages/{message_id}")
DELETE_MESSAGE = _delete("/v1/messages/{message_id}")
STREAM_EVENTS = _get(CONVERSATION + "/events")
CREATE_CHECKPOINT = _post(CONVERSATION + "/checkpoints")
LIST_CHECKPOINTS = _get(CONVERSATION + "/checkpoints")
GET_LATEST_CHECKPOINT = _get(CONVERSATION + "/checkpoints/latest")
GET_CHECKPOINT = _get("/v1/checkpoints/{checkpoint_id}")
GET_CHECKPOINT_AT = _get(CONVERSATION + "/checkpoints/{iteration}")
PRUNE_CHECKPOINTS = _post(CONVERSATION + "/checkpoints/prune")

# -- memories, knowledge, search -------------------------------------------------------------------------------
MEMORY = "/v1/memories/{memory_id}"
STORE_MEMORY = _post("/v1/memories")
LIST_MEMORIES = _get("/v1/memories")
GET_MEMORY = _get(MEMORY)
DELETE_MEMORY = _delete(MEMORY)
GET_MEMORY_HISTORY = _get(MEMORY + "/history")
UPDATE_MEMORY = _patch(MEMORY)
ADD_MEMORY_SEGMENT = _post("/v1/memories/segments")
DELETE_MEMORIES = _delete("/v1/memories", retry=False)
KNOWLEDGE_CHUNK = "/v1/knowledge/{chunk_id}"
UPSERT_KNOWLEDGE = _post("/v1/knowledge")
UPSERT_KNOWLEDGE_BULK = _post("/v1/knowledge/bulk")
LIST_KNOWLEDGE = _get("/v1/knowledge")
SEARCH_KNOWLEDGE = _post("/v1/knowledge/search", retry=True)
GET_KNOWLEDGE_CHUNK = _get(KNOWLEDGE_CHUNK)
DELETE_KNOWLEDGE_CHUNK = _delete(KNOWLEDGE_CHUNK)
GET_KNOWLEDGE_CHUNKS = _get("/v1/knowledge/lookup")
DELETE_KNOWLEDGE_CHUNKS = _delete("/v1/knowledge", retry=False)
SEARCH = _post("/v1/search", retry=True)

# -- /v1/memory: the three-line memory API ---------------------------------------------------------------------
MEMORY_API = "/v1/memory/{memory_id}"
MEMORY_ADD = _post("/v1/memory/add")
MEMORY_SEARCH = _post("/v1/memory/search", retry=True)
MEMORY_CONTEXT = _post("/v1/memory/context", retry=True)
MEMORY_GET_ALL = _get("/v1/memory")
# Deleting "everything of a user" again after a lost answer would report 0 deleted: sent once.
MEMORY_DELETE_ALL = _delete("/v1/memory", retry=False)
MEMORY_GET = _get(MEMORY_API)
MEMORY_UPDATE = _patch(MEMORY_API)
MEMORY_DELETE = _delete(MEMORY_API)
MEMORY_HISTORY = _get(MEMORY_API + "/history")

# -- the agent's records ---------------------------------------------------------------------------------------
RECORD_TOOL_EXECUTION = _post("/v1/tool-executions")
LIST_TOOL_EXECUTIONS = _get("/v1/tool-executions")
RECORD_INTERACTION_EVENT = _post("/v1/interaction-events")
LIST_INTERACTION_EVENTS = _get("/v1/interaction-events")
RECORD_METRICS = _post("/v1/agent-metrics")
QUERY_METRICS = _get("/v1/agent-metrics")

# -- channels: configs, sessions, presence, rate limits; feature flags ----------------------------------------
CHANNEL = "/v1/channels/{channel}"
SESSION = CHANNEL + "/sessions/{channel_user_id}"
SET_CHANNEL_CONFIG = _put(CHANNEL)
GET_CHANNEL_CONFIG = _get(CHANNEL)
GET_SESSION = _get(SESSION)
UPDATE_SESSION = _patch(SESSION)
TOUCH_SESSION = _post(SESSION + "/touch")
END_SESSION = _delete(SESSION)
ACTIVE_USERS = _get(CHANNEL + "/active-users")
COUNT_ACTIVE_USERS = _get(CHANNEL + "/active-users/count")
MARK_USER_ACTIVE = _post(CHANNEL + "/active-users/{user_id}")
MARK_USER_INACTIVE = _delete(CHANNEL + "/active-users/{user_id}")
CHECK_RATE_LIMIT = _post("/v1/rate-limits/check")
FEATURE_FLAG = "/v1/feature-flags/{flag}"
GET_FEATURE_FLAG = _get(FEATURE_FLAG)
SET_FEATURE_FLAG = _put(FEATURE_FLAG)
DELETE_FEATURE_FLAG = _delete(FEATURE_FLAG)

ENDPOINTS: Final[tuple[Endpoint, ...]] = tuple(
    value for value in list(globals().values()) if isinstance(value, Endpoint)
)
"""Every operation above."""


def calls(endpoint: Endpoint) -> Callable[[F], F]:
    """Declare the operation a client method calls (read back by ``endpoint_of``)."""

    def mark(function: F) -> F:
        setattr(function, _ATTRIBUTE, endpoint)
        return function

    return mark


def endpoint_of(function: object) -> Endpoint | None:
    """The operation a client method declared with ``@calls``, or None."""
    found = getattr(function, _ATTRIBUTE, None)
    return found if isinstance(found, Endpoint) else None
