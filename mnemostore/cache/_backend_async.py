"""Cache primitives (async; ``_backend.py`` is generated from this file): the interface and the in-process one.

``AsyncRedisBackend`` (in ``_redis_async``) runs each primitive as one Redis round trip (a command, a pipeline or
a Lua script from ``_lua``); ``AsyncLocalBackend`` here runs the same primitives on an in-process
``LocalState``. The features in ``_cache_async`` only ever talk to this interface, which is why one test suite
covers both.

Backends raise driver errors as they come (the classes in their ``errors``): translating them into degraded
mode is the job of the caller's circuit breaker, at one boundary. This module does not import redis, so the
embedded default works without the ``redis`` extra.
"""

from __future__ import annotations

import asyncio
import queue
from abc import ABC, abstractmethod
from collections.abc import Sequence

from mnemostore.cache._local import LocalState, LoopSubscriber, ThreadSubscriber

__all__ = ["AsyncBackend", "AsyncLocalBackend", "AsyncSubscription", "ContextRead"]

ContextRead = tuple[str, bool, int, int, bytes]  # (version, valid, last seq, floor, entries joined by ",")


class AsyncSubscription(ABC):
    """Payloads published on some channels, in order, from the moment of subscribing."""

    @abstractmethod
    async def get(self, timeout: float | None = None) -> tuple[str, bytes] | None:
        """The next (channel, payload), or None when ``timeout`` seconds pass without one."""

    @abstractmethod
    async def close(self) -> None: ...


class AsyncBackend(ABC):
    name: str
    # What a call may raise when the server is down, slow or confused: the caller's circuit breaker catches these.
    errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)

    @abstractmethod
    async def ping(self) -> None:
        """Succeeds only when the backend serves every key (the breaker's probe)."""

    def note_failure(self) -> None:
        """A call just failed (the breaker opens): remember what ``promoted`` will compare against."""
        return None

    async def promoted(self) -> list[str]:
        """The servers that became primaries since ``note_failure`` (a failover): they may lack writes their old
        primaries acknowledged, so recovery flushes their cached keys (``delete_matching(servers=…)``). Clears
        what ``note_failure`` remembered. Empty on one server."""
        return []

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def getex(self, key: str, ttl_ms: int) -> bytes | None:
        """Get and push the expiry ``ttl_ms`` ahead (sliding TTL)."""

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl_ms: int, *, nx: bool = False) -> bool: ...

    @abstractmethod
    async def fill(self, key: str, value: bytes, ttl_ms: int, *, expect: bytes | None) -> bool:
        """Set ``key`` only if it still holds ``expect`` (None: absent); True when written."""

    @abstractmethod
    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl_ms: int) -> None: ...

    @abstractmethod
    async def delete(self, keys: Sequence[str]) -> None: ...

    @abstractmethod
    async def delete_matching(self, pattern: str, *, servers: Sequence[str] = ()) -> int:
        """Delete every key matching a SCAN glob (only those held by ``servers``, when given); returns how many."""

    @abstractmethod
    async def ctx_read(self, meta: str, lst: str, count: int, *, token: str, ttl_ms: int) -> ContextRead:
        """The window (or a miss) and its version; mints version ``token`` when the meta has none."""

    @abstractmethod
    async def ctx_append(
        self,
        meta: str,
        lst: str,
        *,
        first: int,
        last: int,
        size: int,
        ttl_ms: int,
        token: str,
        entries: Sequence[bytes],
        channel: str,
        payload: bytes,
    ) -> bool: ...

    @abstractmethod
    async def ctx_refill(
        self,
        meta: str,
        lst: str,
        *,
        seen: str,
        token: str,
        last: int,
        floor: int,
        ttl_ms: int,
        entries: Sequence[bytes],
    ) -> bool: ...

    @abstractmethod
    async def ctx_invalidate(
        self, pairs: Sequence[tuple[str, str]], *, token: str, ttl_ms: int, reset: bool = False
    ) -> None:
        """Invalidate the windows of (meta, list) pairs: drop the lists, replace the version tokens."""

    @abstractmethod
    async def rate_acquire(
        self, keys: Sequence[str], limits: Sequence[tuple[float, float]], cost: int
    ) -> tuple[int, int, list[int]]: ...

    @abstractmethod
    async def presence_touch(self, key: str, member: str, now_ms: int, ttl_ms: int) -> None: ...

    @abstractmethod
    async def presence_leave(self, key: str, member: str) -> None: ...

    @abstractmethod
    async def presence_members(self, key: str, since_ms: int) -> list[str]: ...

    @abstractmethod
    async def presence_count(self, key: str, since_ms: int) -> int: ...

    @abstractmethod
    async def hgetall(self, key: str) -> dict[str, bytes]: ...

    @abstractmethod
    async def hset(self, key: str, field: str, value: bytes) -> None: ...

    @abstractmethod
    async def hdel(self, key: str, field: str) -> None: ...

    @abstractmethod
    async def publish(self, channel: str, payload: bytes) -> None: ...

    @abstractmethod
    async def subscribe(self, channels: Sequence[str]) -> AsyncSubscription: ...

    def may_have_subscribers(self, channel: str) -> bool:
        """False only when no one can be listening on ``channel`` (so an event need not even be encoded)."""
        return True


# -- in-process -------------------------------------------------------------------------------------------------


class AsyncLocalSubscription(AsyncSubscription):
    def __init__(self, state: LocalState, channels: Sequence[str]) -> None:
        self._state = state
        if True:  # ASYNC
            self._receiver = LoopSubscriber(asyncio.get_running_loop())
        else:
            self._receiver = ThreadSubscriber()
        state.subscribe(channels, self._receiver)

    async def get(self, timeout: float | None = None) -> tuple[str, bytes] | None:
        if True:  # ASYNC
            try:
                return await asyncio.wait_for(self._receiver.queue.get(), timeout)
            except TimeoutError:
                return None
        else:
            try:
                return self._receiver.queue.get(timeout=timeout)
            except queue.Empty:
                return None

    async def close(self) -> None:
        self._state.unsubscribe(self._receiver)


class AsyncLocalBackend(AsyncBackend):
    """The primitives on a ``LocalState``; never fails, never blocks on I/O."""

    name = "local"

    def __init__(self, state: LocalState) -> None:
        self.state = state

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get(self, key: str) -> bytes | None:
        return self.state.get(key)

    async def getex(self, key: str, ttl_ms: int) -> bytes | None:
        return self.state.getex(key, ttl_ms)

    async def set(self, key: str, value: bytes, ttl_ms: int, *, nx: bool = False) -> bool:
        return self.state.set(key, value, ttl_ms, nx=nx)

    async def fill(self, key: str, value: bytes, ttl_ms: int, *, expect: bytes | None) -> bool:
        return self.state.fill(key, value, ttl_ms, expect=expect)

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl_ms: int) -> None:
        for key, value in items:
            self.state.set(key, value, ttl_ms)

    async def delete(self, keys: Sequence[str]) -> None:
        self.state.delete(keys)

    async def delete_matching(self, pattern: str, *, servers: Sequence[str] = ()) -> int:
        return self.state.delete_matching(pattern)

    async def ctx_read(self, meta: str, lst: str, count: int, *, token: str, ttl_ms: int) -> ContextRead:
        return self.state.ctx_read(meta, lst, count, token=token, ttl_ms=ttl_ms)

    async def ctx_append(
        self,
        meta: str,
        lst: str,
        *,
        first: int,
        last: int,
        size: int,
        ttl_ms: int,
        token: str,
        entries: Sequence[bytes],
        channel: str,
        payload: bytes,
    ) -> bool:
        return self.state.ctx_append(
            meta,
            lst,
            first=first,
            last=last,
            size=size,
            ttl_ms=ttl_ms,
            token=token,
            entries=entries,
            channel=channel,
            payload=payload,
        )

    async def ctx_refill(
        self,
        meta: str,
        lst: str,
        *,
        seen: str,
        token: str,
        last: int,
        floor: int,
        ttl_ms: int,
        entries: Sequence[bytes],
    ) -> bool:
        return self.state.ctx_refill(
            meta, lst, seen=seen, token=token, last=last, floor=floor, ttl_ms=ttl_ms, entries=entries
        )

    async def ctx_invalidate(
        self, pairs: Sequence[tuple[str, str]], *, token: str, ttl_ms: int, reset: bool = False
    ) -> None:
        for meta, lst in pairs:
            self.state.ctx_invalidate(meta, lst, token=token, ttl_ms=ttl_ms, reset=reset)

    async def rate_acquire(
        self, keys: Sequence[str], limits: Sequence[tuple[float, float]], cost: int
    ) -> tuple[int, int, list[int]]:
        return self.state.rate_acquire(keys, limits, cost)

    async def presence_touch(self, key: str, member: str, now_ms: int, ttl_ms: int) -> None:
        self.state.presence_touch(key, member, now_ms, ttl_ms)

    async def presence_leave(self, key: str, member: str) -> None:
        self.state.presence_leave(key, member)

    async def presence_members(self, key: str, since_ms: int) -> list[str]:
        return self.state.presence_members(key, since_ms)

    async def presence_count(self, key: str, since_ms: int) -> int:
        return len(self.state.presence_members(key, since_ms))

    async def hgetall(self, key: str) -> dict[str, bytes]:
        return self.state.hgetall(key)

    async def hset(self, key: str, field: str, value: bytes) -> None:
        self.state.hset(key, field, value)

    async def hdel(self, key: str, field: str) -> None:
        self.state.hdel(key, field)

    async def publish(self, channel: str, payload: bytes) -> None:
        self.state.publish(channel, payload)

    async def subscribe(self, channels: Sequence[str]) -> AsyncSubscription:
        return AsyncLocalSubscription(self.state, channels)

    def may_have_subscribers(self, channel: str) -> bool:
        return self.state.has_subscribers(channel)
