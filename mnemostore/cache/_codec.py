"""Compact serialisation of cached values (pure, shared by both twins).

Messages of a recent-context window are JSON arrays whose first element is the sequence number (the Lua
scripts read it with a pattern match, see _lua): ``[seq, id as a 128-bit integer, role, content, model, prompt
tokens, completion tokens, metadata, created_at µs since the epoch, idempotency key]``. Tenant and conversation
ids are not stored: they are in the key. Times travel as integer microseconds, so they come back exactly, tz-aware
UTC. A window arrives as its entries joined by commas (one string, see CTX_READ) and is decoded with one
``json.loads``, about twice as fast as one call per entry.

**Sealed values.** Given a ``Sealer`` (a cache on Redis with encryption on), the values the database holds
sealed are stored and published sealed: message metadata (``encode_message``, ``message_json``) and users' emails
(``USER``'s ``seal``). Reads open them: ``decode_messages`` only when the window's bytes hold an envelope at all
(one substring search), so a window without sealed values, or a cache without a sealer, costs nothing more.

The standard json module is used: orjson would shave microseconds off a window decode, but building the
``Message`` objects (UUIDs, datetimes) costs as much as parsing, so it is not worth a dependency.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, TypeVar

from mnemostore.cache._types import ChannelSession, EventType, Sealer, StoreEvent
from mnemostore.domain import (
    ApiKey,
    ChannelConfig,
    Message,
    Quotas,
    Role,
    Tenant,
    TenantStatus,
    User,
)

__all__ = [
    "API_KEY",
    "CHANNEL_CONFIG",
    "TENANT",
    "USER",
    "Codec",
    "decode_api_key",
    "decode_channel_config",
    "decode_event",
    "decode_messages",
    "decode_session",
    "decode_tenant",
    "decode_user",
    "encode_api_key",
    "encode_channel_config",
    "encode_event",
    "encode_message",
    "encode_session",
    "encode_tenant",
    "encode_user",
    "from_us",
    "json_dumps",
    "json_loads",
    "message_json",
    "open_event",
    "to_us",
]

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_ROLES = {r.value: r for r in Role}
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_dumps(value: Any) -> bytes:
    return _dumps(value).encode()


def json_loads(data: bytes | str) -> Any:
    return json.loads(data)


def to_us(value: datetime) -> int:
    return (value - _EPOCH) // _US


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _opt_id(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


# -- messages ---------------------------------------------------------------------------------------------------


def encode_message(m: Message, sealer: Sealer | None = None) -> bytes:
    """A window entry; its metadata sealed by ``sealer`` as the database holds it."""
    metadata = m.metadata if sealer is None else sealer.seal_metadata(m.tenant_id, m.metadata)
    return _dumps(
        [
            m.seq,
            m.id.int,
            m.role.value,
            m.content,
            m.model,
            m.prompt_tokens,
            m.completion_tokens,
            metadata,
            to_us(m.created_at),
            m.idempotency_key,
        ]
    ).encode()


def decode_messages(
    entries: Sequence[bytes] | bytes,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    sealer: Sealer | None = None,
) -> list[Message]:
    """Messages from encoded entries, or from entries already joined by commas; sealed metadata opened.

    Raises:
        EncryptionKeyError: a sealed value does not open with ``sealer``'s keys.
    """
    if not entries:
        return []
    joined = entries if isinstance(entries, bytes) else b",".join(entries)
    rows = json.loads(b"[" + joined + b"]")
    if sealer is not None and sealer.envelope_prefix in joined:
        for r in rows:
            r[7] = sealer.open_metadata(tenant_id, r[7])
    epoch, make_id, roles = _EPOCH, uuid.UUID, _ROLES
    return [
        Message(
            id=make_id(int=r[1]),
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            seq=r[0],
            role=roles[r[2]],
            content=r[3],
            model=r[4],
            prompt_tokens=r[5],
            completion_tokens=r[6],
            metadata=r[7],
            created_at=epoch + timedelta(microseconds=r[8]),
            idempotency_key=r[9],
        )
        for r in rows
    ]


def message_json(m: Message, sealer: Sealer | None = None) -> dict[str, Any]:
    """A message as a JSON-ready dict (events); its metadata sealed by ``sealer`` as the database holds it."""
    return {
        "id": str(m.id),
        "tenant_id": str(m.tenant_id),
        "conversation_id": str(m.conversation_id),
        "seq": m.seq,
        "role": m.role.value,
        "content": m.content,
        "model": m.model,
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "metadata": m.metadata if sealer is None else sealer.seal_metadata(m.tenant_id, m.metadata),
        "created_at": m.created_at.isoformat(),
        "idempotency_key": m.idempotency_key,
    }


# -- cached objects ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Codec(Generic[T]):
    """How one kind of cached object becomes bytes and back (the object cache's ``codec=``).

    ``seal`` gives the object as Redis may hold it (a copy with the fields the database seals sealed), ``unseal``
    opens a decoded one; None: nothing in this kind is sealed.
    """

    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]
    seal: Callable[[T, Sealer], T] | None = None
    unseal: Callable[[T, Sealer], T] | None = None


def encode_user(u: User) -> bytes:
    return _dumps(
        [
            str(u.id),
            str(u.tenant_id),
            u.display_name,
            u.email,
            u.external_id,
            u.preferred_model,
            u.preferences,
            u.metadata,
            to_us(u.created_at),
            to_us(u.updated_at),
        ]
    ).encode()


def decode_user(data: bytes) -> User:
    r = json.loads(data)
    return User(
        id=uuid.UUID(r[0]),
        tenant_id=uuid.UUID(r[1]),
        display_name=r[2],
        email=r[3],
        external_id=r[4],
        preferred_model=r[5],
        preferences=r[6],
        metadata=r[7],
        created_at=from_us(r[8]),
        updated_at=from_us(r[9]),
    )


def seal_user(u: User, sealer: Sealer) -> User:
    return u if u.email is None else dataclasses.replace(u, email=sealer.seal_email(u.tenant_id, u.email))


def unseal_user(u: User, sealer: Sealer) -> User:
    u.email = sealer.open_email(u.tenant_id, u.email)
    return u


def encode_tenant(t: Tenant) -> bytes:
    q = t.quotas
    return _dumps(
        [
            str(t.id),
            t.name,
            t.plan,
            t.status.value,
            [q.max_users, q.max_messages, q.max_storage_bytes, q.allowed_models],
            t.config,
            to_us(t.created_at),
            to_us(t.updated_at),
        ]
    ).encode()


def decode_tenant(data: bytes) -> Tenant:
    r = json.loads(data)
    return Tenant(
        id=uuid.UUID(r[0]),
        name=r[1],
        plan=r[2],
        status=TenantStatus(r[3]),
        quotas=Quotas(
            max_users=r[4][0],
            max_messages=r[4][1],
            max_storage_bytes=r[4][2],
            # Entries written before allowed models existed have three limits.
            allowed_models=tuple(r[4][3]) if len(r[4]) > 3 and r[4][3] is not None else None,
        ),
        config=r[5],
        created_at=from_us(r[6]),
        updated_at=from_us(r[7]),
    )


def encode_api_key(k: ApiKey) -> bytes:
    """A live API key's record (never its secret, which the store does not have)."""
    revoked = None if k.revoked_at is None else to_us(k.revoked_at)
    used = None if k.last_used_at is None else to_us(k.last_used_at)
    return _dumps(
        [str(k.id), str(k.tenant_id), k.name, k.prefix, k.read_only, to_us(k.created_at), revoked, used]
    ).encode()


def decode_api_key(data: bytes) -> ApiKey:
    r = json.loads(data)
    return ApiKey(
        id=uuid.UUID(r[0]),
        tenant_id=uuid.UUID(r[1]),
        name=r[2],
        prefix=r[3],
        read_only=r[4],
        created_at=from_us(r[5]),
        revoked_at=None if r[6] is None else from_us(r[6]),
        last_used_at=None if r[7] is None else from_us(r[7]),
    )


def encode_channel_config(c: ChannelConfig) -> bytes:
    return _dumps(
        [str(c.tenant_id), c.channel, c.default_model, c.settings, c.rate_limits, to_us(c.updated_at)]
    ).encode()


def decode_channel_config(data: bytes) -> ChannelConfig:
    r = json.loads(data)
    return ChannelConfig(
        tenant_id=uuid.UUID(r[0]),
        channel=r[1],
        default_model=r[2],
        settings=r[3],
        rate_limits=r[4],
        updated_at=from_us(r[5]),
    )


def encode_session(s: ChannelSession) -> bytes:
    return _dumps(
        [
            str(s.tenant_id),
            s.channel,
            s.channel_user_id,
            str(s.user_id),
            None if s.conversation_id is None else str(s.conversation_id),
            s.model,
            to_us(s.started_at),
            to_us(s.last_activity_at),
            s.data,
        ]
    ).encode()


def decode_session(data: bytes) -> ChannelSession:
    r = json.loads(data)
    return ChannelSession(
        tenant_id=uuid.UUID(r[0]),
        channel=r[1],
        channel_user_id=r[2],
        user_id=uuid.UUID(r[3]),
        conversation_id=_opt_id(r[4]),
        model=r[5],
        started_at=from_us(r[6]),
        last_activity_at=from_us(r[7]),
        data=r[8],
    )


def encode_event(e: StoreEvent) -> bytes:
    return _dumps({"type": e.type, "tenant_id": str(e.tenant_id), "at": e.at.isoformat(), "data": e.data}).encode()


def open_event(event: StoreEvent, sealer: Sealer) -> StoreEvent:
    """``event`` (decoded, so changed in place) with the sealed metadata of its messages opened.

    Raises:
        EncryptionKeyError: a sealed value does not open with ``sealer``'s keys.
    """
    if event.type == EventType.MESSAGE_ADDED:
        for message in event.data.get("messages", ()):
            if isinstance(message, dict) and "metadata" in message:
                message["metadata"] = sealer.open_metadata(event.tenant_id, message["metadata"])
    return event


def decode_event(data: bytes | str) -> StoreEvent:
    r = json.loads(data)
    return StoreEvent(
        type=r["type"], tenant_id=uuid.UUID(r["tenant_id"]), at=datetime.fromisoformat(r["at"]), data=r["data"]
    )


# One codec per cached object kind, shared by both twins of the cache (and the service, through the package).
USER: Final = Codec(encode_user, decode_user, seal_user, unseal_user)
TENANT: Final = Codec(encode_tenant, decode_tenant)
CHANNEL_CONFIG: Final = Codec(encode_channel_config, decode_channel_config)
API_KEY: Final = Codec(encode_api_key, decode_api_key)
