"""Every exception mnemostore raises, under one root.

Callers catch these, never a driver's (psycopg, sqlite3, redis): the store translates driver errors at one
boundary (``mnemostore.store._database_async``) and chains the original with ``from``. Each message says what
happened and what to do about it.

::

    MnemostoreError
    ├── ConfigurationError            a setting is missing or malformed
    │   ├── EncryptionKeyError        a sealed value names a key that is missing, or is not the right one
    │   └── AdminAccessUnavailable    admin work, but the database login may not take the admin role
    ├── BackendUnavailable            the database (or another server) cannot be reached
    ├── SchemaError
    │   ├── SchemaOutOfDate           the database is behind the code: run `mnemostore db upgrade`
    │   └── MigrationError            an upgrade or rollback failed
    ├── InvalidInput                  the caller passed something the store refuses
    │   ├── ContentTooLarge
    │   ├── InvalidText               NUL bytes or non-text where text is required
    │   ├── InvalidMetadata           not a JSON object, or not serialisable
    │   ├── InvalidCursor
    │   ├── ContextBudgetTooSmall     build_context's max_tokens cannot hold even a section header
    │   └── InvalidVector             a caller's vector: empty, not finite, all zeros, or without its model
    │       └── VectorDimensionMismatch  not the dimension of the tenant's other vectors of that model
    ├── NotFoundError                 (another tenant's object is reported exactly like a missing one)
    │   ├── TenantNotFound  UserNotFound  ConversationNotFound  MessageNotFound
    │   ├── MemoryNotFound  KnowledgeChunkNotFound  CheckpointNotFound  ApiKeyNotFound
    │   ├── ChannelConfigNotFound  SessionNotFound
    ├── ConflictError                 a unique rule would be broken
    │   ├── TenantAlreadyExists
    │   ├── DuplicateIdentity
    │   └── IdempotencyConflict       an idempotency key sent again with a different message
    ├── QuotaExceeded                 a tenant's plan limit would be passed
    ├── ModelNotAllowed               a conversation or message names a model the tenant's plan does not allow
    ├── SearchError                   a search or indexing request cannot be served as asked
    │   ├── EmbedderUnavailable       no embedder: the extra is not installed, or the embedding service fails
    │   │   ├── EmbedderDeviceUnavailable  MNEMOSTORE_EMBEDDER_DEVICE names a device the machine lacks
    │   │   └── EmbedderNotConfigured  semantic search asked for where no embedder is configured or installed
    │   ├── VectorSearchUnavailable   PostgreSQL without pgvector: full-text search only
    │   ├── EmbeddingDimensionMismatch  stored vectors and the embedder disagree on the dimension
    │   └── IndexingTimeout           wait_for_indexing() gave up before the backlog was indexed
    ├── BackupError                   a backup, restore or erasure could not be carried out
    │   ├── ArchiveCorrupted          a file is missing, truncated or altered: nothing was restored
    │   │   ├── ArchiveUnsafe         a link, a device or a path outside the archive: refused unread
    │   │   ├── ArchiveRowTooLarge    a line over MNEMOSTORE_BACKUP_MAX_ROW_BYTES: refused unread
    │   │   └── ArchiveSignatureInvalid  the manifest's signature does not match the operator's key
    │   ├── ArchiveNotSigned          a signing key is configured and the archive carries no signature
    │   ├── ArchiveVersionUnsupported the archive's format or schema revision is not this code's
    │   ├── BackupVerificationFailed  a new archive did not restore into a scratch database as it should
    │   └── RestoreConflict           the target already holds that data (also a ConflictError)
    ├── RateLimited                   too many requests in a window: retry after ``retry_after`` seconds
    ├── SummarizationError            a summariser (a user-supplied LLM callable) failed or returned no text
    ├── AuthenticationError           the HTTP service knows no such API key (missing, unknown or revoked)
    └── PermissionDenied              the key may not do this: a tenant key on /v1/tenants, or the reverse
        ├── ReadOnlyKey               a read-only key asked to write
        └── TenantSuspended           the key's tenant is suspended

Errors that come from the HTTP service (``mnemostore.Client``) are these same classes, with ``status`` (the HTTP
status), ``code`` (the body's stable code) and ``request_id`` (quote it to the operator) set; elsewhere they are
None. ``InvalidInput.fields`` names each invalid field of a request the service refused.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AdminAccessUnavailable",
    "ApiKeyNotFound",
    "ArchiveCorrupted",
    "ArchiveNotSigned",
    "ArchiveRowTooLarge",
    "ArchiveSignatureInvalid",
    "ArchiveUnsafe",
    "ArchiveVersionUnsupported",
    "AuthenticationError",
    "BackendUnavailable",
    "BackupError",
    "BackupVerificationFailed",
    "ChannelConfigNotFound",
    "CheckpointNotFound",
    "ConfigurationError",
    "ConflictError",
    "ContentTooLarge",
    "ContextBudgetTooSmall",
    "ConversationNotFound",
    "DuplicateIdentity",
    "EmbedderDeviceUnavailable",
    "EmbedderNotConfigured",
    "EmbedderUnavailable",
    "EmbeddingDimensionMismatch",
    "EncryptionKeyError",
    "IdempotencyConflict",
    "IndexingTimeout",
    "InvalidCursor",
    "InvalidInput",
    "InvalidMetadata",
    "InvalidText",
    "InvalidVector",
    "KnowledgeChunkNotFound",
    "MemoryNotFound",
    "MessageNotFound",
    "MigrationError",
    "MnemostoreError",
    "ModelNotAllowed",
    "NotFoundError",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "ReadOnlyKey",
    "RestoreConflict",
    "SchemaError",
    "SchemaOutOfDate",
    "SearchError",
    "SessionNotFound",
    "SummarizationError",
    "TenantAlreadyExists",
    "TenantNotFound",
    "TenantSuspended",
    "UserNotFound",
    "VectorDimensionMismatch",
    "VectorSearchUnavailable",
]


class MnemostoreError(Exception):
    """Root of every error mnemostore raises on purpose."""

    __module__ = "mnemostore"
    status: int | None = None
    """The HTTP status of the service's answer, when ``mnemostore.Client`` raised the error."""
    code: str | None = None
    """The stable ``code`` of the service's error body (``not_found``, ``rate_limited``…), likewise."""
    request_id: str | None = None
    """The id of the HTTP request, likewise: the service's log lines carry it too."""


class ConfigurationError(MnemostoreError):
    """A setting is missing, malformed or names something that does not exist."""

    __module__ = "mnemostore"


class AdminAccessUnavailable(ConfigurationError):
    """Admin work (tenants, the indexer across tenants, backups) was asked of a PostgreSQL login that may not take
    the admin role: set MNEMOSTORE_ADMIN_DATABASE_URL to a login that may, or grant the role."""

    __module__ = "mnemostore"


class EncryptionKeyError(ConfigurationError):
    """An encrypted value cannot be opened: its key is not configured, or the configured key is not the one."""

    __module__ = "mnemostore"


class BackendUnavailable(MnemostoreError):
    """A server the store needs did not answer; the operation wrote nothing."""

    __module__ = "mnemostore"


class SchemaError(MnemostoreError):
    """The database schema does not match what this code needs."""

    __module__ = "mnemostore"


class SchemaOutOfDate(SchemaError):
    """The database is at an older (or unknown) revision than the code."""

    __module__ = "mnemostore"

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        at = f"at {current}" if current else "not initialised"
        super().__init__(f"database schema is {at}, this code needs {head}: run `mnemostore db upgrade`")


class MigrationError(SchemaError):
    """An upgrade or rollback could not be carried out."""

    __module__ = "mnemostore"


class InvalidInput(MnemostoreError):
    """The caller passed a value the store refuses; nothing was written."""

    __module__ = "mnemostore"
    fields: list[dict[str, Any]] | None = None
    """From the HTTP service: each invalid field of the request (``loc``, ``field``, ``message``, ``type``)."""


class ContentTooLarge(InvalidInput):
    __module__ = "mnemostore"


class InvalidText(InvalidInput):
    __module__ = "mnemostore"


class InvalidMetadata(InvalidInput):
    __module__ = "mnemostore"


class InvalidCursor(InvalidInput):
    __module__ = "mnemostore"


class ContextBudgetTooSmall(InvalidInput):
    """``build_context(max_tokens=)`` is too small to hold even a section header of the block."""

    __module__ = "mnemostore"


class InvalidVector(InvalidInput):
    """A vector passed by the caller (``vector=``) is not usable: empty, not numbers, not finite, all zeros, or
    without the name of the model that computed it."""

    __module__ = "mnemostore"


class VectorDimensionMismatch(InvalidVector):
    """A caller's vector has another dimension than the tenant's vectors of the same model (or than the store's
    embedder, for its model's name): one model name, one dimension."""

    __module__ = "mnemostore"

    def __init__(self, model: str, expected: int, got: int) -> None:
        self.model = model
        self.expected = expected
        self.got = got
        super().__init__(
            f"vector dimension mismatch for model {model!r}: its vectors have {expected} dimensions, this one has "
            f"{got}. Pass the vector of that same model, or name the model that computed it (model=...): vectors of "
            "different models are stored and searched apart"
        )


class NotFoundError(MnemostoreError):
    """No such object in this tenant (objects of other tenants are never visible)."""

    __module__ = "mnemostore"
    kind = "object"

    def __init__(self, key: object, detail: str = "") -> None:
        self.key = key
        super().__init__(f"{self.kind} {key} not found{detail}")


class TenantNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "tenant"


class UserNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "user"


class ConversationNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "conversation"


class MessageNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "message"


class MemoryNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "memory"


class KnowledgeChunkNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "knowledge chunk"


class CheckpointNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "checkpoint"


class ApiKeyNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "API key"


class ChannelConfigNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "channel config"


class SessionNotFound(NotFoundError):
    __module__ = "mnemostore"
    kind = "session"


class ConflictError(MnemostoreError):
    """The write would break a uniqueness rule; nothing was written."""

    __module__ = "mnemostore"


class TenantAlreadyExists(ConflictError):
    __module__ = "mnemostore"


class DuplicateIdentity(ConflictError):
    __module__ = "mnemostore"


class IdempotencyConflict(ConflictError):
    """An idempotency key already used for a different message; nothing was written."""

    __module__ = "mnemostore"

    def __init__(self, key: str, seq: int, fields: list[str]) -> None:
        self.key = key
        self.seq = seq
        self.fields = fields
        super().__init__(
            f"idempotency key {key!r} was used for message {seq}, whose {', '.join(fields)} differ from this "
            f"request's: a retry must send the same message; use a new key for a new message"
        )


class QuotaExceeded(MnemostoreError):
    """The write would take a tenant past a limit of its plan; nothing was written."""

    __module__ = "mnemostore"

    def __init__(self, tenant_id: object, quota: str, limit: int) -> None:
        self.tenant_id = tenant_id
        self.quota = quota
        self.limit = limit
        super().__init__(
            f"tenant {tenant_id} has reached its {quota} quota ({limit}): delete data or raise the "
            f"limit with `mnemostore tenant set-quota` / update_tenant_config(quotas=...)"
        )


class ModelNotAllowed(MnemostoreError):
    """A conversation or a message names a model that the tenant's plan does not allow; nothing was written."""

    __module__ = "mnemostore"

    def __init__(self, tenant_id: object, model: str, allowed: tuple[str, ...]) -> None:
        self.tenant_id = tenant_id
        self.model = model
        self.allowed = allowed
        names = ", ".join(repr(name) for name in allowed) if allowed else "none"
        super().__init__(
            f"model {model!r} is not allowed by the plan of tenant {tenant_id} (allowed: {names}): use an allowed "
            "model, or allow it with update_tenant_config(quotas=Quotas(allowed_models=[...]))"
        )


class RateLimited(MnemostoreError):
    """A rate limit of the tenant, a user, an API key or a client address is used up; nothing was done."""

    __module__ = "mnemostore"

    def __init__(self, scope: str, limit: int, window: float, retry_after: float) -> None:
        self.scope = scope
        self.limit = limit
        self.window = window
        self.retry_after = retry_after
        super().__init__(
            f"rate limit of {scope} reached ({limit} per {window:g} s): retry after {retry_after:.3f} s, "
            "or raise the limit in the channel or tenant config (rate_limits)"
        )


class BackupError(MnemostoreError):
    """A backup, restore, export or erasure could not be carried out; a failed restore wrote nothing."""

    __module__ = "mnemostore"


class ArchiveCorrupted(BackupError):
    """The archive is unreadable, incomplete, or a file's size or checksum differs from its manifest."""

    __module__ = "mnemostore"


class ArchiveUnsafe(ArchiveCorrupted):
    """The archive holds a link, a device, or an entry whose path leads outside it: refused before reading it."""

    __module__ = "mnemostore"


class ArchiveRowTooLarge(ArchiveCorrupted):
    """A line of a table file is longer than ``MNEMOSTORE_BACKUP_MAX_ROW_BYTES``: refused as soon as the limit is
    crossed, so a crafted archive cannot make a restore hold one huge line in memory."""

    __module__ = "mnemostore"


class ArchiveSignatureInvalid(ArchiveCorrupted):
    """The archive's signature does not match its manifest under the operator's key: it was altered after the
    backup, or signed with another key."""

    __module__ = "mnemostore"


class ArchiveNotSigned(BackupError):
    """A signing key is configured and the archive carries no signature (allow it explicitly to restore it)."""

    __module__ = "mnemostore"


class ArchiveVersionUnsupported(BackupError):
    """The archive was written in a format version, or at a schema revision, that this code cannot restore."""

    __module__ = "mnemostore"


class BackupVerificationFailed(BackupError):
    """``backup --verify``: the new archive could not be restored into a scratch database, or what it restored
    there differs from its manifest; the archive is set aside and nothing is pruned."""

    __module__ = "mnemostore"


class RestoreConflict(BackupError, ConflictError):
    """The target already holds data the restore would write (a non-empty database, an existing tenant)."""

    __module__ = "mnemostore"


class SummarizationError(MnemostoreError):
    """A summariser failed or returned something that is not text; nothing was stored."""

    __module__ = "mnemostore"


class SearchError(MnemostoreError):
    """A search or indexing request cannot be served as asked; nothing was written."""

    __module__ = "mnemostore"


class EmbedderUnavailable(SearchError):
    """Semantic search and indexing need an embedder, and none can be used here."""

    __module__ = "mnemostore"


class EmbedderDeviceUnavailable(EmbedderUnavailable):
    """The embedder was set to run on a device this machine does not have (``MNEMOSTORE_EMBEDDER_DEVICE=cuda``
    without a CUDA GPU, ``mps`` off Apple silicon): the message names the setting to change."""

    __module__ = "mnemostore"


class EmbedderNotConfigured(EmbedderUnavailable):
    """Semantic search was asked for explicitly, and this store has no embedder (none configured, or the
    embeddings extra is not installed). The default search mode needs none: it runs full text."""

    __module__ = "mnemostore"


class VectorSearchUnavailable(SearchError):
    """The database cannot hold or search vectors (PostgreSQL without the pgvector extension)."""

    __module__ = "mnemostore"


class EmbeddingDimensionMismatch(SearchError):
    """The embedder's vectors have another dimension than the ones stored, or than it announced."""

    __module__ = "mnemostore"

    def __init__(self, expected: int, got: int, detail: str = "") -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"embedding dimension mismatch: expected {expected}, got {got}{detail}. After changing the embedding "
            "model run `mnemostore reindex`, which re-embeds everything with the configured one"
        )


class IndexingTimeout(SearchError):
    """``wait_for_indexing`` gave up while jobs were still pending."""

    __module__ = "mnemostore"


class AuthenticationError(MnemostoreError):
    """The HTTP service knows no such API key: it is missing, unknown or revoked (HTTP 401)."""

    __module__ = "mnemostore"


class PermissionDenied(MnemostoreError):
    """The API key may not do this (HTTP 403): a tenant's key on the admin endpoints, or the admin key elsewhere."""

    __module__ = "mnemostore"


class ReadOnlyKey(PermissionDenied):
    """A read-only API key asked to write: use a key created without ``read_only``."""

    __module__ = "mnemostore"


class TenantSuspended(PermissionDenied):
    """The API key's tenant is suspended: its administrator can set it active again."""

    __module__ = "mnemostore"
