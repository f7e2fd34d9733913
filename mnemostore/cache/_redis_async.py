"""The Redis implementation of the cache primitives (async; ``_redis.py`` is generated from this file).

Each primitive is one round trip: a command, a pipeline, or one of the Lua scripts of ``_lua`` (run with
EVALSHA, loaded on first use). Only ``build_cache`` imports this module, when a Redis URL is configured.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from mnemostore.cache import _lua
from mnemostore.cache._backend_async import AsyncBackend, AsyncSubscription, ContextRead

__all__ = ["BACKEND_ERRORS", "AsyncRedisBackend", "AsyncRedisSubscription"]

BACKEND_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
SUBSCRIBE_TIMEOUT_SECONDS = 5.0  # how long a new subscription waits for the server to confirm it


class AsyncRedisSubscription(AsyncSubscription):
    """Pub/sub on its own connection (no short read timeout: it waits for messages by design).

    A lost connection is re-established on the next ``get``: messages published meanwhile are lost, which is
    pub/sub's contract (the database keeps the truth; a consumer resynchronises from it after a gap).
    """

    def __init__(self, client: Redis, channels: Sequence[str]) -> None:
        self._client: Any = client  # redis-py's pubsub API is partly untyped
        self._channels = list(channels)
        self._pubsub: Any = None
        self._early: collections.deque[Any] = collections.deque()  # messages read while confirming

    async def _connect(self) -> Any:
        if self._pubsub is None:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(*self._channels)
                await self._confirm(pubsub)
            except BaseException:
                await pubsub.aclose()
                raise
            self._pubsub = pubsub
        return self._pubsub

    async def _confirm(self, pubsub: Any) -> None:
        """Wait for the server to confirm every channel: SUBSCRIBE is only written to the socket, and a PUBLISH on
        another connection may otherwise be handled before it (and never reach us)."""
        waiting = len(self._channels)
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_SECONDS
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Redis did not confirm the subscription within {SUBSCRIBE_TIMEOUT_SECONDS:g} s")
            message = await pubsub.get_message(timeout=left)
            if message is None:
                continue
            if message.get("type") == "subscribe":
                waiting -= 1
            elif message.get("type") == "message":
                self._early.append(message)

    async def start(self) -> None:
        """Subscribe now, so that events published from here on are received (retried by ``get`` on failure)."""
        try:
            await self._connect()
        except BACKEND_ERRORS:
            await self._reset()

    async def get(self, timeout: float | None = None) -> tuple[str, bytes] | None:
        try:
            pubsub = await self._connect()
            if self._early:
                message = self._early.popleft()
            else:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        except BACKEND_ERRORS:
            await self._reset()
            if timeout:
                await asyncio.sleep(min(timeout, 0.1))
            return None
        if message is None or message.get("type") != "message":
            return None
        channel = message["channel"]
        return channel.decode() if isinstance(channel, bytes) else str(channel), message["data"]

    async def _reset(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*BACKEND_ERRORS):
                await pubsub.aclose()

    async def close(self) -> None:
        await self._reset()
        await self._client.aclose()


class AsyncRedisBackend(AsyncBackend):
    """The primitives on a Redis server through redis-py, with short timeouts and no retries.

    Retrying is the breaker's decision, not the driver's: redis-py's default retries would multiply the
    timeout every request pays while Redis is down.
    """

    name = "redis"
    errors = BACKEND_ERRORS

    def __init__(self, url: str, *, timeout: float, connect_timeout: float) -> None:
        self.url = url
        self._options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": False,
        }
        self.client = Redis.from_url(url, socket_timeout=timeout, **self._options)
        self._read = self.client.register_script(_lua.CTX_READ)
        self._append = self.client.register_script(_lua.CTX_APPEND)
        self._refill = self.client.register_script(_lua.CTX_REFILL)
        self._invalidate = self.client.register_script(_lua.CTX_INVALIDATE)
        self._rate = self.client.register_script(_lua.RATE_ACQUIRE)
        self._fill = self.client.register_script(_lua.CACHE_FILL)

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()

    async def get(self, key: str) -> bytes | None:
        value: Any = await self.client.get(key)
        return value  # type: ignore[no-any-return]  # bytes: decode_responses=False

    async def getex(self, key: str, ttl_ms: int) -> bytes | None:
        value: Any = await self.client.getex(key, px=ttl_ms)
        return value  # type: ignore[no-any-return]

    async def set(self, key: str, value: bytes, ttl_ms: int, *, nx: bool = False) -> bool:
        return bool(await self.client.set(key, value, px=ttl_ms, nx=nx))

    async def fill(self, key: str, value: bytes, ttl_ms: int, *, expect: bytes | None) -> bool:
        return bool(await self._fill(keys=[key], args=[expect or b"", value, ttl_ms]))

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl_ms: int) -> None:
        if len(items) == 1:
            await self.client.set(items[0][0], items[0][1], px=ttl_ms)
            return
        for start in range(0, len(items), 500):
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value in items[start : start + 500]:
                    pipe.set(key, value, px=ttl_ms)
                await pipe.execute()

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self.client.unlink(*keys)

    async def delete_matching(self, pattern: str) -> int:
        count = 0
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                count += await self.client.unlink(*batch)
                batch = []
        if batch:
            count += await self.client.unlink(*batch)
        return count

    async def ctx_read(self, meta: str, lst: str, count: int, *, token: str, ttl_ms: int) -> ContextRead:
        reply = await self._read(keys=[meta, lst], args=[count, token, ttl_ms])
        version = reply[0].decode()
        if not reply[1]:
            return version, False, 0, 0, b""
        return version, True, int(reply[2]), int(reply[3]), reply[4]

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
        args: list[Any] = [first, last, size, ttl_ms, token, channel, payload, *entries]
        return bool(await self._append(keys=[meta, lst], args=args))

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
        args: list[Any] = [seen, token, last, floor, ttl_ms, *entries]
        return bool(await self._refill(keys=[meta, lst], args=args))

    async def ctx_invalidate(
        self, pairs: Sequence[tuple[str, str]], *, token: str, ttl_ms: int, reset: bool = False
    ) -> None:
        args: list[Any] = [token, ttl_ms, "1" if reset else "0"]
        if len(pairs) == 1:
            await self._invalidate(keys=list(pairs[0]), args=args)
            return
        for start in range(0, len(pairs), 500):
            async with self.client.pipeline(transaction=False) as pipe:
                for meta, lst in pairs[start : start + 500]:
                    await self._invalidate(keys=[meta, lst], args=args, client=pipe)
                await pipe.execute()

    async def rate_acquire(
        self, keys: Sequence[str], limits: Sequence[tuple[float, float]], cost: int
    ) -> tuple[int, int, list[int]]:
        args: list[Any] = [cost]
        for capacity, rate in limits:
            args += [repr(float(capacity)), repr(float(rate))]
        reply = await self._rate(keys=list(keys), args=args)
        return int(reply[0]), int(reply[1]), [int(x) for x in reply[2:]]

    async def presence_touch(self, key: str, member: str, now_ms: int, ttl_ms: int) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {member: now_ms})
            pipe.zremrangebyscore(key, "-inf", f"({now_ms - ttl_ms}")
            pipe.pexpire(key, ttl_ms)
            await pipe.execute()

    async def presence_leave(self, key: str, member: str) -> None:
        await self.client.zrem(key, member)

    async def presence_members(self, key: str, since_ms: int) -> list[str]:
        members: list[Any] = await self.client.zrangebyscore(key, since_ms, "+inf")
        return [m.decode() for m in members]

    async def presence_count(self, key: str, since_ms: int) -> int:
        return int(await self.client.zcount(key, since_ms, "+inf"))

    async def hgetall(self, key: str) -> dict[str, bytes]:
        found: dict[Any, Any] = await self.client.hgetall(key)
        return {k.decode(): v for k, v in found.items()}

    async def hset(self, key: str, field: str, value: bytes) -> None:
        await self.client.hset(key, field, value)

    async def hdel(self, key: str, field: str) -> None:
        await self.client.hdel(key, field)

    async def publish(self, channel: str, payload: bytes) -> None:
        await self.client.publish(channel, payload)

    async def subscribe(self, channels: Sequence[str]) -> AsyncSubscription:
        # Its own client: a subscriber waits on reads, which the command client's short timeout would cut.
        client = Redis.from_url(self.url, socket_timeout=None, **self._options)
        subscription = AsyncRedisSubscription(client, channels)
        await subscription.start()
        return subscription
