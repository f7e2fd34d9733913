"""Redis key names: one place that knows the layout (pure, shared by both twins).

Every key of a tenant starts ``<prefix>:{<tenant id>}:``. The braces are a Redis Cluster hash tag: all of a
tenant's keys hash to one slot, so the Lua scripts that touch several of them (a history window and its meta,
the buckets of one rate-limit check) stay legal on a cluster, and a tenant is flushed by one SCAN of its prefix
without touching any other tenant's keys. Keys that caches may drop at any time live under ``…:c:`` so a flush
of cached data (sessions included: they are rebuilt from the database) leaves rate-limit buckets and presence
alone.

::

    mns:{t}:c:ctx:<conversation>     list   recent messages, oldest first (encoded by _codec)
    mns:{t}:c:ctxm:<conversation>    hash   v (version token) ok last floor hw, see _lua
    mns:{t}:c:o:<kind>:<id…>         string cached object (user, identity, tenant, channel config)
    mns:{t}:c:s:<channel>:<user>     string session record, sliding TTL (rebuilt from the database if lost)
    mns:{t}:rl:<scope…>              hash   token bucket (t tokens, ts ms)
    mns:{t}:p:<channel>              zset   presence: member user id, score last seen (ms)
    mns:{t}:ev                       pub/sub channel of the tenant's events
    mns:flags                        hash   global feature-flag overrides
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "mns"

    def tenant(self, tenant_id: uuid.UUID) -> str:
        """Prefix of every key of one tenant (with the hash tag)."""
        return f"{self.prefix}:{{{tenant_id}}}:"

    def tenant_pattern(self, tenant_id: uuid.UUID) -> str:
        return _glob_escape(self.tenant(tenant_id)) + "*"

    def tenant_cache_pattern(self, tenant_id: uuid.UUID) -> str:
        return _glob_escape(self.tenant(tenant_id)) + "c:*"

    def all_cache_pattern(self) -> str:
        return _glob_escape(self.prefix) + ":{*}:c:*"

    def all_pattern(self) -> str:
        return _glob_escape(self.prefix) + ":*"

    def context(self, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> tuple[str, str]:
        """(meta hash, list) of a conversation's recent-context window."""
        base = self.tenant(tenant_id)
        return f"{base}c:ctxm:{conversation_id}", f"{base}c:ctx:{conversation_id}"

    def obj(self, tenant_id: uuid.UUID, kind: str, *parts: object) -> str:
        return f"{self.tenant(tenant_id)}c:o:{kind}:" + ":".join(_part(p) for p in parts)

    def session(self, tenant_id: uuid.UUID, channel: str, channel_user_id: str) -> str:
        return f"{self.tenant(tenant_id)}c:s:{_part(channel)}:{_part(channel_user_id)}"

    def rate(self, tenant_id: uuid.UUID, *parts: object) -> str:
        return f"{self.tenant(tenant_id)}rl:" + ":".join(_part(p) for p in parts)

    def presence(self, tenant_id: uuid.UUID, channel: str) -> str:
        return f"{self.tenant(tenant_id)}p:{_part(channel)}"

    def events(self, tenant_id: uuid.UUID) -> str:
        return f"{self.tenant(tenant_id)}ev"

    def global_flags(self) -> str:
        return f"{self.prefix}:flags"


def _part(value: object) -> str:
    # ':' separates parts and '{' '}' would move the hash tag: percent-escape them (and '%' itself).
    text = str(value)
    if any(c in text for c in "%:{}"):
        text = text.replace("%", "%25").replace(":", "%3A").replace("{", "%7B").replace("}", "%7D")
    return text


def _glob_escape(text: str) -> str:
    """Escape SCAN MATCH metacharacters so a prefix is matched literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
