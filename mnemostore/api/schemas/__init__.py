"""Request and response bodies of the HTTP API (pydantic v2), with the examples ``/docs`` shows.

Responses are read straight from the domain dataclasses (``from_attributes``), so a field added to the domain
appears here only when it is added on purpose. Requests refuse unknown fields (a typo is a 422 naming it, not a
silently ignored value) and refuse what the store would refuse, where the field is known: NUL characters and
lone surrogates in text, non-finite numbers, naive timestamps. The store validates again; these checks are here
so that a 422 names the field (``loc``) rather than only describing it.
"""

from mnemostore.api.schemas._agent import (
    AgentMetricBatch,
    AgentMetricIn,
    AgentMetricOut,
    CheckpointCreate,
    CheckpointOut,
    InteractionEventCreate,
    InteractionEventOut,
    ToolExecutionCreate,
    ToolExecutionOut,
)
from mnemostore.api.schemas._common import ErrorBody, FieldError, HealthOut, Items, Page, ReadyOut, Text, Timestamp
from mnemostore.api.schemas._conversations import (
    ConversationCreate,
    ConversationExport,
    ConversationOut,
    ConversationStatsOut,
    ConversationUpdate,
    HistoryOut,
    MessageBatch,
    MessageCreate,
    MessageOut,
)
from mnemostore.api.schemas._memories import (
    KnowledgeBulkUpsert,
    KnowledgeChunkIn,
    KnowledgeChunkOut,
    KnowledgeSearchRequest,
    KnowledgeUpsert,
    MemoryCreate,
    MemoryOut,
    MemoryVersionOut,
    SearchFilters,
    SearchHitOut,
    SearchRequest,
    SearchResultsOut,
)
from mnemostore.api.schemas._memory_api import MemoryAdd, MemoryDeleted, MemoryEdit, MemorySearch
from mnemostore.api.schemas._tenants import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    QuotasIn,
    QuotasOut,
    TenantCreate,
    TenantOut,
    TenantUpdate,
    UsageOut,
)
from mnemostore.api.schemas._users import IdentityCreate, IdentityOut, UserCreate, UserOut, UserResolve, UserUpdate

__all__ = [
    "AgentMetricBatch",
    "AgentMetricIn",
    "AgentMetricOut",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyOut",
    "CheckpointCreate",
    "CheckpointOut",
    "ConversationCreate",
    "ConversationExport",
    "ConversationOut",
    "ConversationStatsOut",
    "ConversationUpdate",
    "ErrorBody",
    "FieldError",
    "HealthOut",
    "HistoryOut",
    "IdentityCreate",
    "IdentityOut",
    "InteractionEventCreate",
    "InteractionEventOut",
    "Items",
    "KnowledgeBulkUpsert",
    "KnowledgeChunkIn",
    "KnowledgeChunkOut",
    "KnowledgeSearchRequest",
    "KnowledgeUpsert",
    "MemoryAdd",
    "MemoryCreate",
    "MemoryDeleted",
    "MemoryEdit",
    "MemoryOut",
    "MemorySearch",
    "MemoryVersionOut",
    "MessageBatch",
    "MessageCreate",
    "MessageOut",
    "Page",
    "QuotasIn",
    "QuotasOut",
    "ReadyOut",
    "SearchFilters",
    "SearchHitOut",
    "SearchRequest",
    "SearchResultsOut",
    "TenantCreate",
    "TenantOut",
    "TenantUpdate",
    "Text",
    "Timestamp",
    "ToolExecutionCreate",
    "ToolExecutionOut",
    "UsageOut",
    "UserCreate",
    "UserOut",
    "UserResolve",
    "UserUpdate",
]
