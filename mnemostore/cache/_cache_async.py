"""The cache features (async; ``_cache.py`` is generated from this file).

The database is the source of truth; the cache only makes the hot path fast and may be lost at any time.
``build_cache(settings)`` returns an ``AsyncCache`` on Redis (``MNEMOSTORE_REDIS_URL``) or, by default, on an
in-process state shared by the stores of this process that use the same database. Its features:

* ``context``: the recent-context window of each conversation (the last ``recent_context_size`` messages),
  written through on append and read through by ``get_conversation_history``;
* ``objects``: cache-aside for users, identity lookups, tenant and channel configs (``cached`` / ``invalidate``);
* ``sessions``, ``rate_limiter``, ``presence``, ``flags`` (global overrides) and ``events`` (pub/sub).

**Degraded mode.** Every call goes through one ``AsyncCacheClient``, whose circuit breaker (see ``_breaker``)
turns a Redis failure or timeout into: reads that miss (the database answers), cache writes that are skipped
and remembered as dirty keys, and rate limits, presence, sessions and flags that run on this process's own
in-process fallback (``cache_health()`` says so). Nothing a caller does fails because of Redis.

**What a reader can see (the staleness guarantee).** Within one process, a history read never returns less
than a write that already returned: when the write-through of an append fails, the breaker opens and this
process reads the database until the dirty window has been invalidated in Redis. Across processes, a reader
never sees history older than an append whose write-through *reached Redis* (the seq-guarded scripts of
``_lua`` make that hold under any interleaving of appenders, readers and refills). If an append's write-through
did not reach Redis (that process could not reach Redis, or died between its commit and the write-through),
other processes may serve the window without that message until the first of: the writer's recovery
invalidates it (one breaker cool-down after Redis answers it again), the next append to the conversation
(whose sequence number no longer continues the window, so the window is dropped), or the window's TTL
(``recent_context_ttl_seconds``, counted from its last write, never extended by reads). A lost window meta (a
flush, an eviction, an expiry, a Redis restart) cannot let an older snapshot in either: a refill must present
the version token its own miss read, and a vanished meta has none. Cache-aside entries follow the same rule:
an invalidation writes a unique tombstone, and a fill is a compare-and-set against what its miss saw, so a
reader that read the database before a write can never store over that write's invalidation; dirty keys are
tombstoned on recovery. Without Redis (the embedded default), all of this holds within the one process that
owns the database; several processes on one database need ``MNEMOSTORE_REDIS_URL`` (or ``cache_enabled=False``).

**Encryption at rest.** With encryption on (``MNEMOSTORE_ENCRYPTION_KEYS``), what the database holds sealed is
sealed in Redis too, and on the event channel: the store gives its field codec to ``seal_with``, and the recent-
context windows, the cached users (their emails) and the ``message.added`` events carry the sealed values (the
same keys and associated data as the rows, fresh nonces), opened on read and by this service's own subscribers
(``subscribe``: the HTTP event stream gets plaintext, for the tenant's own callers); a raw Redis subscriber sees
envelopes. A cached value that does not open (sealed with a key since removed) is a miss: the database answers.
The in-process cache (the embedded default, no Redis) holds plaintext: it never leaves the process, whose memory
holds the keys as well.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mnemostore.cache import _codec
from mnemostore.cache._acompat import AsyncLoader
from mnemostore.cache._backend_async import AsyncBackend, AsyncLocalBackend
from mnemostore.cache._breaker import Admission, CacheStats, CircuitBreaker, DirtyKeys, DirtySnapshot
from mnemostore.cache._clock import SYSTEM_CLOCK, Clock
from mnemostore.cache._codec import Codec
from mnemostore.cache._events_async import AsyncEventBus
from mnemostore.cache._keys import Keys
from mnemostore.cache._local import LocalState, shared_state
from mnemostore.cache._types import BreakerState, ChannelSession, EventType, Sealer
from mnemostore.config import Settings
from mnemostore.domain import Message
from mnemostore.errors import ConfigurationError, EncryptionKeyError

# The codecs are defined in _codec (shared by both twins) and re-exported while the service imports them from here.
__all__ = [
    "TOMBSTONE",
    "AsyncCache",
    "AsyncCacheClient",
    "AsyncFeatureFlags",
    "AsyncObjectCache",
    "AsyncPresence",
    "AsyncRateLimiter",
    "AsyncRecentContext",
    "AsyncSessions",
    "Window",
    "build_cache",
]

T = TypeVar("T")

log = logging.getLogger("mnemostore.cache")

TOMBSTONE = b"\x00"  # prefix of "invalidated here" markers: reads miss; only a miss that saw this one may fill
TOMBSTONE_TTL_MS = 60_000  # longer than any database read that could still try to fill an older value


def _token() -> str:
    return secrets.token_hex(8)


def _tombstone() -> bytes:
    return TOMBSTONE + secrets.token_bytes(8)


class AsyncCacheClient:
    """The one boundary between the features and a backend: breaker, dirty keys, latency and error counts.

    Features call ``admit()`` before a backend call and make it inside ``with guard():``. A failure inside the
    block is swallowed, counted and opens the breaker; the feature then takes its degraded path.
    """

    def __init__(
        self,
        backend: AsyncBackend,
        *,
        fallback: AsyncLocalBackend,
        keys: Keys,
        cooldown: float,
        dirty_max: int,
        context_ttl_ms: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.backend = backend
        self.fallback = fallback
        self.keys = keys
        self.clock = clock
        self.breaker = CircuitBreaker(cooldown=cooldown, name=f"cache backend ({backend.name})", clock=clock.monotonic)
        self.dirty = DirtyKeys(dirty_max)
        self.stats = CacheStats()
        self.context_ttl_ms = context_ttl_ms
        self.recoveries = 0
        # Set by ``AsyncCache.seal_with``: what the database seals is sealed in the backend too (None: clear).
        self.sealer: Sealer | None = None

    @property
    def is_local(self) -> bool:
        return self.backend is self.fallback

    @property
    def degraded(self) -> bool:
        return self.breaker.state is not BreakerState.CLOSED

    async def admit(self) -> bool:
        """May the caller use the backend now? (The caller that gets the probe first runs the recovery.)"""
        admission = self.breaker.admit()
        if admission is Admission.ALLOW:
            return True
        if admission is Admission.DENY:
            return False
        return await self._recover()

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except self.backend.errors as error:
            self.stats.errors += 1
            self.backend.note_failure()
            self.breaker.failure(error)
        else:
            self.stats.observe(time.perf_counter() - start)

    async def _recover(self) -> bool:
        invalidated = 0
        try:
            await self.backend.ping()
            if promoted := await self.backend.promoted():
                log.warning("cache backend failed over to %s: flushing their cached keys", ", ".join(promoted))
                self.dirty.add_servers(promoted)
            while snapshot := self.dirty.take():
                try:
                    await self._invalidate(snapshot)
                except BaseException:
                    self.dirty.restore(snapshot)
                    raise
                invalidated += len(snapshot)
        except self.backend.errors as error:
            self.stats.errors += 1
            self.breaker.failure(error)
            return False
        self.recoveries += 1
        self.breaker.close(f"{invalidated} dirty entries invalidated")
        return True

    async def _invalidate(self, snapshot: DirtySnapshot) -> None:
        if snapshot.everything:
            await self.backend.delete_matching(self.keys.all_cache_pattern())
            return
        if snapshot.servers:
            await self.backend.delete_matching(self.keys.all_cache_pattern(), servers=sorted(snapshot.servers))
        for tenant_id in snapshot.tenants:
            await self.backend.delete_matching(self.keys.tenant_cache_pattern(tenant_id))
        if snapshot.contexts:
            pairs = [self.keys.context(t, c) for t, c in snapshot.contexts]
            await self.backend.ctx_invalidate(pairs, token=_token(), ttl_ms=self.context_ttl_ms)
        if snapshot.keys:
            await self.backend.set_many([(k, _tombstone()) for k in snapshot.keys], TOMBSTONE_TTL_MS)

    async def flush_dirty(self) -> None:
        """Invalidate what is dirty now (for writes skipped just as the breaker closed)."""
        snapshot = self.dirty.take()
        if not snapshot:
            return
        done = False
        if await self.admit():
            with self.guard():
                await self._invalidate(snapshot)
                done = True
        if not done:
            self.dirty.restore(snapshot)

    async def skipped_context(self, tenant_id: uuid.UUID, conversation_ids: Iterable[uuid.UUID]) -> None:
        self.stats.skipped_writes += 1
        for conversation_id in conversation_ids:
            self.dirty.add_context(tenant_id, conversation_id)
        if self.breaker.state is BreakerState.CLOSED:  # it closed meanwhile: nobody will flush these later
            await self.flush_dirty()

    async def skipped_keys(self, tenant_id: uuid.UUID | None, keys: Iterable[str]) -> None:
        self.stats.skipped_writes += 1
        for key in keys:
            self.dirty.add_key(tenant_id, key)
        if self.breaker.state is BreakerState.CLOSED:
            await self.flush_dirty()

    async def skipped_tenant(self, tenant_id: uuid.UUID | None) -> None:
        self.stats.skipped_writes += 1
        if tenant_id is None:
            self.dirty.add_everything()
        else:
            self.dirty.add_tenant(tenant_id)
        if self.breaker.state is BreakerState.CLOSED:
            await self.flush_dirty()


# -- recent context ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Window:
    """A read of a conversation's recent-context window.

    ``messages`` is None on a miss. ``version`` is what a refill must present (None: the cache was not asked,
    so do not refill). The window holds every existing message with ``floor < seq <= last``, oldest first;
    ``floor`` is 0 when nothing older exists.
    """

    version: str | None
    messages: list[Message] | None = None
    last: int = 0
    floor: int = 0


class AsyncRecentContext:
    """The last ``size`` messages of each conversation, written through on append, seq-guarded (see _lua)."""

    name = "recent_context"

    def __init__(self, client: AsyncCacheClient, *, size: int, ttl_ms: int, enabled: bool) -> None:
        self.client = client
        self.size = size
        self.ttl_ms = ttl_ms
        self.enabled = enabled and size > 0

    async def read(self, tenant_id: uuid.UUID, conversation_id: uuid.UUID, *, count: int = 0) -> Window:
        """The newest ``count`` messages of the window (0: all of it)."""
        if not self.enabled:
            return Window(None)
        if await self.client.admit():
            with self.client.guard():
                meta, lst = self.client.keys.context(tenant_id, conversation_id)
                version, valid, last, floor, entries = await self.client.backend.ctx_read(
                    meta, lst, count, token=_token(), ttl_ms=self.ttl_ms
                )
                if valid:
                    try:
                        messages = _codec.decode_messages(entries, tenant_id, conversation_id, self.client.sealer)
                    except EncryptionKeyError:
                        # Sealed with a key this process no longer has: a miss, which the database refills.
                        self.client.stats.miss(self.name)
                        return Window(version)
                    self.client.stats.hit(self.name)
                    return Window(version, messages, last, floor)
                self.client.stats.miss(self.name)
                return Window(version)
        self.client.stats.miss(self.name)
        return Window(None)

    async def append(
        self,
        tenant_id: uuid.UUID,
        conversation_id: uuid.UUID,
        messages: Sequence[Message],
        *,
        event: tuple[str, bytes] | None = None,
    ) -> bool:
        """Write committed messages (consecutive seqs) through; publish ``event`` (channel, payload) with them.

        Returns False when the write was skipped (degraded mode) and the event not sent.
        """
        if not messages:
            return True
        channel, payload = event or ("", b"")
        if await self.client.admit():
            with self.client.guard():
                meta, lst = self.client.keys.context(tenant_id, conversation_id)
                await self.client.backend.ctx_append(
                    meta,
                    lst,
                    first=messages[0].seq,
                    last=messages[-1].seq,
                    size=max(self.size, 1),
                    ttl_ms=self.ttl_ms,
                    token=_token(),
                    entries=[_codec.encode_message(m, self.client.sealer) for m in messages] if self.size else [],
                    channel=channel,
                    payload=payload,
                )
                return True
        await self.client.skipped_context(tenant_id, [conversation_id])
        return False

    async def refill(
        self,
        tenant_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        seen: str,
        last: int,
        floor: int,
        messages: Sequence[Message],
    ) -> bool:
        """Store a window read from the database, unless it was invalidated or appended to since ``seen``."""
        if not self.enabled:
            return False
        if await self.client.admit():
            with self.client.guard():
                meta, lst = self.client.keys.context(tenant_id, conversation_id)
                return await self.client.backend.ctx_refill(
                    meta,
                    lst,
                    seen=seen,
                    token=_token(),
                    last=last,
                    floor=floor,
                    ttl_ms=self.ttl_ms,
                    entries=[_codec.encode_message(m, self.client.sealer) for m in messages[-self.size :]],
                )
        return False

    async def invalidate(
        self, tenant_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID], *, reset: bool = False
    ) -> None:
        """Drop windows after an edit, delete, import or restore (``reset``: the conversation was replaced)."""
        if not conversation_ids:
            return
        if await self.client.admit():
            with self.client.guard():
                pairs = [self.client.keys.context(tenant_id, c) for c in conversation_ids]
                await self.client.backend.ctx_invalidate(pairs, token=_token(), ttl_ms=self.ttl_ms, reset=reset)
                return
        await self.client.skipped_context(tenant_id, conversation_ids)


# -- cache-aside ------------------------------------------------------------------------------------------------


class AsyncObjectCache:
    """Cache-aside with TTLs: ``cached(key, load, codec=...)`` reads through, ``invalidate(keys)`` after writes."""

    def __init__(self, client: AsyncCacheClient, *, ttl_ms: int, enabled: bool) -> None:
        self.client = client
        self.ttl_ms = ttl_ms
        self.enabled = enabled

    async def cached(
        self, key: str, load: AsyncLoader[T | None], *, codec: Codec[T], name: str, ttl: float | None = None
    ) -> T | None:
        """The value at ``key``, or ``load()``'s result, stored for ``ttl`` seconds (default: cache_ttl_seconds).

        None results are not cached. The fill is a compare-and-set against what the miss saw (nothing, or one
        invalidation's tombstone), so it cannot undo an invalidation that happened after the miss.
        """
        asked = False
        seen: bytes | None = None
        sealer = self.client.sealer
        if self.enabled and await self.client.admit():
            with self.client.guard():
                seen = await self.client.backend.get(key)
                asked = True
                if seen is not None and not seen.startswith(TOMBSTONE):
                    found = codec.decode(seen)
                    try:
                        if sealer is not None and codec.unseal is not None:
                            found = codec.unseal(found, sealer)
                    except EncryptionKeyError:
                        pass  # sealed with a key this process no longer has: a miss, refilled below
                    else:
                        self.client.stats.hit(name)
                        return found
        self.client.stats.miss(name)
        value = await load()
        if asked and value is not None and await self.client.admit():
            ttl_ms = self.ttl_ms if ttl is None else max(1, int(ttl * 1000))
            stored = codec.seal(value, sealer) if sealer is not None and codec.seal is not None else value
            with self.client.guard():
                await self.client.backend.fill(key, codec.encode(stored), ttl_ms, expect=seen)
        return value

    async def invalidate(self, tenant_id: uuid.UUID | None, keys: Sequence[str]) -> None:
        """Tombstone ``keys`` (all of one tenant, or global when ``tenant_id`` is None)."""
        if not keys:
            return
        if await self.client.admit():
            with self.client.guard():
                await self.client.backend.set_many([(k, _tombstone()) for k in keys], TOMBSTONE_TTL_MS)
                return
        await self.client.skipped_keys(tenant_id, keys)


# -- sessions ---------------------------------------------------------------------------------------------------


class AsyncSessions:
    """Channel session records with a sliding TTL; the in-process fallback holds them while Redis is away."""

    name = "sessions"

    def __init__(self, client: AsyncCacheClient, *, ttl_ms: int) -> None:
        self.client = client
        self.ttl_ms = ttl_ms

    async def get(self, tenant_id: uuid.UUID, channel: str, channel_user_id: str) -> ChannelSession | None:
        """The session, its TTL pushed forward; None when there is none (or only a tombstone)."""
        key = self.client.keys.session(tenant_id, channel, channel_user_id)
        raw: bytes | None = None
        if await self.client.admit():
            with self.client.guard():
                raw = await self.client.backend.getex(key, self.ttl_ms)
        else:
            raw = await self.client.fallback.getex(key, self.ttl_ms)
        if raw is None or raw.startswith(TOMBSTONE):
            self.client.stats.miss(self.name)
            return None
        self.client.stats.hit(self.name)
        return _codec.decode_session(raw)

    async def put(self, session: ChannelSession) -> None:
        key = self.client.keys.session(session.tenant_id, session.channel, session.channel_user_id)
        value = _codec.encode_session(session)
        if await self.client.admit():
            with self.client.guard():
                await self.client.backend.set(key, value, self.ttl_ms)
                return
        await self.client.fallback.set(key, value, self.ttl_ms)
        await self.client.skipped_keys(session.tenant_id, [key])

    async def delete(self, tenant_id: uuid.UUID, channel: str, channel_user_id: str) -> None:
        key = self.client.keys.session(tenant_id, channel, channel_user_id)
        await self.client.fallback.delete([key])
        if await self.client.admit():
            with self.client.guard():
                await self.client.backend.delete([key])
                return
        await self.client.skipped_keys(tenant_id, [key])


# -- rate limiting ----------------------------------------------------------------------------------------------


class AsyncRateLimiter:
    """Atomic token buckets in Redis (one Lua call per check); this process's own buckets while degraded."""

    def __init__(self, client: AsyncCacheClient) -> None:
        self.client = client
        self.checks = 0
        self.fallback_checks = 0

    @property
    def mode(self) -> str:
        if self.client.is_local:
            return "local"
        return "local-fallback" if self.client.degraded else "redis"

    async def acquire(
        self, keys: Sequence[str], limits: Sequence[tuple[float, float]], cost: int = 1
    ) -> tuple[int, int, list[int], bool]:
        """Take ``cost`` tokens from every bucket or from none.

        Args:
            limits: (capacity, tokens per millisecond) of each bucket.

        Returns:
            (1-based index of the refusing bucket or 0, retry after in ms, tokens left per bucket, degraded).
        """
        self.checks += 1
        if await self.client.admit():
            with self.client.guard():
                deny, wait, left = await self.client.backend.rate_acquire(keys, limits, cost)
                return deny, wait, left, False
        self.fallback_checks += 1
        deny, wait, left = await self.client.fallback.rate_acquire(keys, limits, cost)
        return deny, wait, left, not self.client.is_local


# -- presence ---------------------------------------------------------------------------------------------------


class AsyncPresence:
    """Who was active on a channel in the last ``ttl`` (a sorted set by last-seen time, per tenant and channel)."""

    def __init__(self, client: AsyncCacheClient, *, ttl_ms: int) -> None:
        self.client = client
        self.ttl_ms = ttl_ms

    async def touch(self, tenant_id: uuid.UUID, channel: str, member: str) -> None:
        key = self.client.keys.presence(tenant_id, channel)
        now = int(self.client.clock.time() * 1000)
        if await self.client.admit():
            with self.client.guard():
                await self.client.backend.presence_touch(key, member, now, self.ttl_ms)
                return
        await self.client.fallback.presence_touch(key, member, now, self.ttl_ms)

    async def leave(self, tenant_id: uuid.UUID, channel: str, member: str) -> None:
        key = self.client.keys.presence(tenant_id, channel)
        await self.client.fallback.presence_leave(key, member)
        if await self.client.admit():
            with self.client.guard():
                await self.client.backend.presence_leave(key, member)

    async def members(self, tenant_id: uuid.UUID, channel: str) -> list[str]:
        """Active members, least recently seen first."""
        key = self.client.keys.presence(tenant_id, channel)
        since = int(self.client.clock.time() * 1000) - self.ttl_ms
        if await self.client.admit():
            with self.client.guard():
                return await self.client.backend.presence_members(key, since)
        return await self.client.fallback.presence_members(key, since)

    async def count(self, tenant_id: uuid.UUID, channel: str) -> int:
        key = self.client.keys.presence(tenant_id, channel)
        since = int(self.client.clock.time() * 1000) - self.ttl_ms
        if await self.client.admit():
            with self.client.guard():
                return await self.client.backend.presence_count(key, since)
        return await self.client.fallback.presence_count(key, since)


# -- feature flags ----------------------------------------------------------------------------------------------


class AsyncFeatureFlags:
    """Global flag overrides set at run time (a hash); tenant and channel flags live in their configs (DB)."""

    def __init__(self, client: AsyncCacheClient, *, defaults: dict[str, Any]) -> None:
        self.client = client
        self.defaults = dict(defaults)

    async def global_flags(self) -> dict[str, Any]:
        """Settings.feature_flags overlaid with the run-time overrides."""
        key = self.client.keys.global_flags()
        found: dict[str, bytes] | None = None
        if await self.client.admit():
            with self.client.guard():
                found = await self.client.backend.hgetall(key)
        if found is None:
            found = await self.client.fallback.hgetall(key)
        out = dict(self.defaults)
        out.update({name: _codec.json_loads(raw) for name, raw in found.items()})
        return {name: value for name, value in out.items() if value is not None}

    async def set_global(self, name: str, value: Any) -> None:
        """Override a global flag (None: remove the override, back to the settings' value)."""
        key = self.client.keys.global_flags()
        raw = _codec.json_dumps(value)
        if value is None:
            await self.client.fallback.hdel(key, name)
        else:
            await self.client.fallback.hset(key, name, raw)
        if not self.client.is_local and await self.client.admit():
            with self.client.guard():
                if value is None:
                    await self.client.backend.hdel(key, name)
                else:
                    await self.client.backend.hset(key, name, raw)


# -- the whole cache --------------------------------------------------------------------------------------------


class AsyncCache:
    """Every cache feature of one store, on one client (one breaker, one set of dirty keys, one set of stats)."""

    def __init__(self, client: AsyncCacheClient, settings: Settings, *, url: str | None = None) -> None:
        self.client = client
        self.url = url
        self.enabled = settings.cache_enabled
        self.context = AsyncRecentContext(
            client,
            size=settings.recent_context_size,
            ttl_ms=settings.recent_context_ttl_seconds * 1000,
            enabled=settings.cache_enabled,
        )
        self.objects = AsyncObjectCache(
            client, ttl_ms=settings.cache_ttl_seconds * 1000, enabled=settings.cache_enabled
        )
        self.sessions = AsyncSessions(client, ttl_ms=settings.session_ttl_seconds * 1000)
        self.rate_limiter = AsyncRateLimiter(client)
        self.presence = AsyncPresence(client, ttl_ms=settings.presence_ttl_seconds * 1000)
        self.flags = AsyncFeatureFlags(client, defaults=settings.feature_flags)
        self.events = AsyncEventBus(client)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> AsyncCache:
        """``build_cache(settings, clock=clock)``, reachable from the class (so each twin builds its own kind)."""
        return build_cache(settings, clock=clock)

    @staticmethod
    async def ping_redis(url: str, *, timeout: float) -> None:
        """Ask the Redis server or cluster at ``url`` whether it serves, on connections of its own, whatever a
        running cache's breaker says (the health check's question); raises what the driver raises.

        Raises:
            ImportError: the redis package is not installed.
        """
        from mnemostore.cache._redis_async import AsyncRedisBackend

        backend = AsyncRedisBackend(url, timeout=timeout, connect_timeout=timeout)
        try:
            await backend.ping()
        finally:
            await backend.close()

    @property
    def keys(self) -> Keys:
        return self.client.keys

    def seal_with(self, sealer: Sealer) -> None:
        """Hold and publish what ``sealer`` encrypts in its sealed form (see the module notes), when it encrypts
        and the backend is Redis; the in-process cache stays in clear."""
        self.client.sealer = sealer if sealer.encrypts and not self.client.is_local else None

    async def messages_added(
        self, tenant_id: uuid.UUID, conversation_id: uuid.UUID, messages: Sequence[Message]
    ) -> None:
        """Write committed messages through and publish ``message.added``, in one round trip."""
        if not messages:
            return
        event = (
            self.events.encode(
                tenant_id,
                EventType.MESSAGE_ADDED,
                {
                    "conversation_id": str(conversation_id),
                    "messages": [_codec.message_json(m, self.client.sealer) for m in messages],
                },
            )
            if self.client.backend.may_have_subscribers(self.client.keys.events(tenant_id))
            else None
        )
        written = await self.context.append(tenant_id, conversation_id, messages, event=event)
        if event is not None:
            if written:
                self.events.published += 1
            else:
                self.events.dropped += 1

    async def flush(self, tenant_id: uuid.UUID | None = None, *, everything: bool = False) -> int:
        """Delete cached data: of one tenant, or of every tenant; ``everything`` also sessions, limits, presence.

        Returns how many keys were deleted (when Redis is unavailable, the flush is remembered and runs on
        recovery, and 0 is returned).
        """
        keys = self.client.keys
        if tenant_id is None:
            pattern = keys.all_pattern() if everything else keys.all_cache_pattern()
        else:
            pattern = keys.tenant_pattern(tenant_id) if everything else keys.tenant_cache_pattern(tenant_id)
        deleted = await self.client.fallback.delete_matching(pattern)
        if self.client.is_local:
            return deleted
        if await self.client.admit():
            with self.client.guard():
                return await self.client.backend.delete_matching(pattern)
        await self.client.skipped_tenant(tenant_id)
        return 0

    def health(self) -> dict[str, Any]:
        """Backend, breaker state, limiter mode, hit/miss per cache and Redis latency, as plain data."""
        breaker = self.client.breaker
        return {
            "backend": self.client.backend.name,
            "url": self.url,
            "enabled": self.enabled,
            "degraded": self.client.degraded,
            "breaker": {
                "state": breaker.state.value,
                "opened": breaker.opened,
                "recoveries": self.client.recoveries,
                "last_error": breaker.last_error,
                "cooldown_seconds": breaker.cooldown,
            },
            "rate_limiter": {
                "mode": self.rate_limiter.mode,
                "checks": self.rate_limiter.checks,
                "fallback_checks": self.rate_limiter.fallback_checks,
            },
            "dirty_keys": len(self.client.dirty),
            "dirty_coarsened": self.client.dirty.coarsened,
            "events": {"published": self.events.published, "dropped": self.events.dropped},
            **self.client.stats.snapshot(),
        }

    async def close(self) -> None:
        await self.client.backend.close()


def build_cache(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> AsyncCache:
    """The cache a store with these settings uses: Redis when ``redis_url`` is set, else in-process.

    The in-process state is shared by every store of this process on the same database and key prefix, unless
    ``clock`` is given: a cache on its own clock (a test's, which the test moves) keeps its own in-process state,
    so that moving that clock never expires another cache's entries.
    """
    keys = Keys(settings.cache_key_prefix)
    backend: AsyncBackend
    if settings.redis_url is None:
        if clock is SYSTEM_CLOCK:
            name = f"{settings.database_url}|{settings.cache_key_prefix}"
            state = shared_state(name, max_keys=settings.local_cache_max_keys)
        else:
            state = LocalState(max_keys=settings.local_cache_max_keys, clock=clock.monotonic)
        backend = fallback = AsyncLocalBackend(state)
    else:
        try:
            from mnemostore.cache._redis_async import AsyncRedisBackend
        except ImportError as error:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError(
                "MNEMOSTORE_REDIS_URL is set but the redis package is not installed: pip install 'mnemostore[redis]'"
            ) from error
        backend = AsyncRedisBackend(
            settings.redis_url,
            timeout=settings.redis_timeout_ms / 1000,
            connect_timeout=settings.redis_connect_timeout_ms / 1000,
        )
        fallback = AsyncLocalBackend(LocalState(max_keys=settings.local_cache_max_keys, clock=clock.monotonic))
    client = AsyncCacheClient(
        backend,
        fallback=fallback,
        keys=keys,
        cooldown=settings.breaker_cooldown_seconds,
        dirty_max=settings.cache_dirty_max,
        context_ttl_ms=settings.recent_context_ttl_seconds * 1000,
        clock=clock,
    )
    return AsyncCache(client, settings, url=settings.redacted_redis_url())
