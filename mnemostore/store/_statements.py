"""Statements of the hot paths (append, history), built once with bound parameters.

Building a Core statement per call costs more than executing it: an append spent about half its time
constructing its three statements and then walking them for the compiled-cache key (benchmarks/README.md,
finding 1). Built once at import, they reach the compiled cache at once and only the parameters vary.
Pure SQLAlchemy construction, shared by both twins of the repositories.
"""

from __future__ import annotations

import functools
from typing import Final

import sqlalchemy as sa

from mnemostore.store.tables import UtcDateTime, conversations, messages, tenant_usage, tenants

__all__ = ["HISTORY_COLUMNS", "INSERT_MESSAGES", "RESERVE", "charge_statement", "history_statement"]

_conv = conversations.c

# Take ``b_count`` sequence numbers and move the counters; RETURNING the last number taken.
RESERVE: Final = (
    sa.update(conversations)
    .where(_conv.tenant_id == sa.bindparam("b_tenant"), _conv.id == sa.bindparam("b_conversation"))
    .values(
        last_seq=_conv.last_seq + sa.bindparam("b_count"),
        message_count=_conv.message_count + sa.bindparam("b_count"),
        total_tokens=_conv.total_tokens + sa.bindparam("b_tokens"),
        content_bytes=_conv.content_bytes + sa.bindparam("b_bytes"),
        last_activity_at=sa.bindparam("b_now", type_=UtcDateTime()),
    )
    .returning(_conv.last_seq)
)

INSERT_MESSAGES: Final = sa.insert(messages)

_AMOUNTS = ("users", "conversations", "messages", "tokens", "storage_bytes")


@functools.cache
def charge_statement(check_users: bool, check_messages: bool, check_storage: bool) -> sa.Update:
    """Add ``b_<counter>`` amounts to a tenant's usage, with a quota guard for each checked counter.

    One statement per combination of guards (at most eight), so a charge that only adds tokens does not pay
    for quota sub-selects.
    """
    usage = tenant_usage.c
    limits = tenants.c
    condition = [usage.tenant_id == sa.bindparam("b_tenant")]
    for check, column, limit, name in (
        (check_users, usage.users, limits.max_users, "b_users"),
        (check_messages, usage.messages, limits.max_messages, "b_messages"),
        (check_storage, usage.storage_bytes, limits.max_storage_bytes, "b_storage_bytes"),
    ):
        if check:
            bound = sa.select(limit).where(limits.id == sa.bindparam("b_tenant")).scalar_subquery()
            condition.append(column + sa.bindparam(name) <= sa.func.coalesce(bound, column + sa.bindparam(name)))
    return (
        sa.update(tenant_usage)
        .where(*condition)
        .values({name: getattr(usage, name) + sa.bindparam(f"b_{name}") for name in _AMOUNTS})
    )


_msg = messages.c
# What a history page needs: the caller already knows the tenant and the conversation.
HISTORY_COLUMNS: Final = (
    _msg.id,
    _msg.seq,
    _msg.role,
    _msg.content,
    _msg.model,
    _msg.prompt_tokens,
    _msg.completion_tokens,
    _msg.metadata,
    _msg.created_at,
    _msg.idempotency_key,
)


@functools.cache
def history_statement(direction: str) -> sa.Select[tuple[object, ...]]:
    """``newest`` (optionally ``before``) or ``after``: up to ``b_limit`` rows on the (tenant, conversation, seq) index.

    Rows of ``newest``/``before`` come newest first; the caller reverses them.
    """
    query = sa.select(*HISTORY_COLUMNS).where(
        _msg.tenant_id == sa.bindparam("b_tenant"), _msg.conversation_id == sa.bindparam("b_conversation")
    )
    if direction == "after":
        return query.where(_msg.seq > sa.bindparam("b_seq")).order_by(_msg.seq).limit(sa.bindparam("b_limit"))
    if direction == "before":
        query = query.where(_msg.seq < sa.bindparam("b_seq"))
    return query.order_by(_msg.seq.desc()).limit(sa.bindparam("b_limit"))
