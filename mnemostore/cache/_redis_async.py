"""The Redis implementation of the cache primitives (async; ``_redis.py`` is generated from this file), on one
server or on a Redis Cluster.

Each primitive is one round trip: a command, a pipeline, or one of the Lua scripts of ``_lua`` (run with
EVALSHA, loaded on first use). Only ``build_cache`` imports this module, when a Redis URL is configured.

**Redis Cluster** (``redis+cluster://host:port[,host:port…]``, see ``_redis_url``): the same primitives through
redis-py's cluster client, which sends each command to the primary of its key's slot, follows MOVED and ASK
redirections, and refreshes its map of the cluster after a failure. Distribution is the cluster's: nothing here
picks a node. Every key of a tenant carries the tenant's hash tag (``_keys``), so each Lua script (a window and
its meta, the buckets of one rate-limit check, the event channel of an append) runs on one node, atomically, as
on one server; a pipeline over several tenants (a recovery's invalidations) is split by node by the client, and
the one global key (flag overrides) is only ever used alone.

Events on a cluster use **sharded pub/sub** (SPUBLISH / SSUBSCRIBE, Redis 7): a tenant's channel belongs to the
slot of its hash tag, so an event travels only to the shard that holds the tenant's keys, and the append's Lua
script can still publish it in its own round trip (Redis refuses a script that publishes to another slot's
channel). Plain PUBLISH would be broadcast over the cluster bus to every node, so the event traffic of the whole
cluster would reach each node whatever the number of shards. A subscriber follows its channel's slot to the new
primary after a failover (redis-py's cluster pub/sub); what is published meanwhile is lost, as with any pub/sub
outage: consumers resynchronise from the database.

**Failover.** A primary that dies fails the calls routed to it: the breaker opens and the store serves from the
database. Its probe passes only when every primary the client routes to answers and the cluster reports
``cluster_state:ok``, i.e. once a replica has taken over. Replication is asynchronous: the promoted replica may
lack writes its old primary acknowledged just before dying (a write-through, an invalidation), so the servers
that became primaries since the breaker opened (``promoted``) have their cached keys flushed before the breaker
closes, exactly as dirty keys are.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, RedisClusterException, RedisError

from mnemostore.cache import _lua
from mnemostore.cache._backend_async import AsyncBackend, AsyncSubscription, ContextRead
from mnemostore.cache._redis_url import is_cluster_url, split_cluster_url
from mnemostore.errors import ConfigurationError

__all__ = ["BACKEND_ERRORS", "AsyncRedisBackend", "AsyncRedisSubscription", "connect"]

# RedisClusterException (no node reachable, a slot not covered) is not a RedisError.
BACKEND_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError, TimeoutError)
SUBSCRIBE_TIMEOUT_SECONDS = 5.0  # how long a new subscription waits for the server to confirm it


def connect(url: str, **options: Any) -> Any:
    """A redis-py client for ``url``: ``Redis`` for one server, ``RedisCluster`` for ``redis+cluster://``.

    ``options`` are the client's keyword arguments (timeouts, retry, decoding), the same for both. Typed ``Any``:
    the callers use what both clients share, with their own signatures.
    """
    if not is_cluster_url(url):
        return Redis.from_url(url, **options)
    if int(redis.__version__.split(".")[0]) < 8:
        raise ConfigurationError(
            f"a Redis Cluster needs redis-py 8 or later (its cluster pub/sub), this is {redis.__version__}: "
            "pip install -U 'redis>=8'"
        )
    nodes, single = split_cluster_url(url)
    parse: Any = parse_url  # redis-py types these in its async modules only
    node: Any = ClusterNode
    kwargs: dict[str, Any] = {**parse(single), **options}
    for name in ("host", "port", "db", "path"):
        kwargs.pop(name, None)
    if kwargs.pop("connection_class", None) is SSLConnection:
        kwargs["ssl"] = True
    return RedisCluster(startup_nodes=[node(host, port) for host, port in nodes], **kwargs)


class AsyncRedisSubscription(AsyncSubscription):
    """Pub/sub on its own connection (no short read timeout: it waits for messages by design).

    A lost connection is re-established on the next ``get``: messages published meanwhile are lost, which is
    pub/sub's contract (the database keeps the truth; a consumer resynchronises from it after a gap). ``sharded``
    (on a cluster): SSUBSCRIBE to each channel on the primary of its slot, which redis-py's cluster pub/sub
    follows when the slot moves (a failover, a resharding).
    """

    def __init__(self, make_client: Callable[[], Any], channels: Sequence[str], *, sharded: bool = False) -> None:
        self._make_client = make_client  # called on first connect: a sync cluster client connects as it is made
        self._client: Any = None  # redis-py's pubsub API is partly untyped
        self._channels = list(channels)
        self._sharded = sharded
        self._confirmation, self._kind = ("ssubscribe", "smessage") if sharded else ("subscribe", "message")
        self._pubsub: Any = None
        self._early: collections.deque[Any] = collections.deque()  # messages read while confirming

    async def _connect(self) -> Any:
        if self._pubsub is None:
            if self._client is None:
                self._client = self._make_client()
            pubsub = self._client.pubsub()
            try:
                if self._sharded:
                    await pubsub.ssubscribe(*self._channels)
                else:
                    await pubsub.subscribe(*self._channels)
                await self._confirm(pubsub)
            except BaseException:
                await pubsub.aclose()
                raise
            self._pubsub = pubsub
        return self._pubsub

    async def _read(self, pubsub: Any, timeout: float | None, *, ignore_confirmations: bool = False) -> Any:
        if self._sharded:
            return await pubsub.get_sharded_message(ignore_subscribe_messages=ignore_confirmations, timeout=timeout)
        return await pubsub.get_message(ignore_subscribe_messages=ignore_confirmations, timeout=timeout)

    async def _confirm(self, pubsub: Any) -> None:
        """Wait for the server to confirm every channel: SUBSCRIBE is only written to the socket, and a PUBLISH on
        another connection may otherwise be handled before it (and never reach us)."""
        waiting = len(self._channels)
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_SECONDS
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Redis did not confirm the subscription within {SUBSCRIBE_TIMEOUT_SECONDS:g} s")
            message = await self._read(pubsub, left)
            if message is None:
                continue
            if message.get("type") == self._confirmation:
                waiting -= 1
            elif message.get("type") == self._kind:
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
            early = self._early.popleft() if self._early else None
            message = early or await self._read(pubsub, timeout, ignore_confirmations=True)
        except BACKEND_ERRORS:
            await self._reset()
            if timeout:
                await asyncio.sleep(min(timeout, 0.1))
            return None
        if message is None or message.get("type") != self._kind:
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
        if self._client is not None:
            await self._client.aclose()


class AsyncRedisBackend(AsyncBackend):
    """The primitives on a Redis server or cluster through redis-py, with short timeouts and no retries.

    Retrying is the breaker's decision, not the driver's: redis-py's default retries would multiply the
    timeout every request pays while Redis is down. (A cluster client still follows MOVED and ASK redirections:
    they are answers, not failures.)
    """

    errors = BACKEND_ERRORS

    def __init__(self, url: str, *, timeout: float, connect_timeout: float) -> None:
        self.url = url
        self.cluster = is_cluster_url(url)
        self.name = "redis-cluster" if self.cluster else "redis"
        self._options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": False,
        }
        self._timeout = timeout
        self._client: Any = None
        self._scripts: dict[str, Any] = {}  # Lua text -> redis-py Script (EVALSHA, loaded on first use)
        # The primaries (host:port) the cluster client routed to when the breaker opened; None: nothing failed.
        self._primaries_at_failure: set[str] | None = None

    @property
    def client(self) -> Any:
        """The redis-py client, made on first use: a sync cluster client connects as it is made, which must happen
        in a call the breaker guards, never in a store's constructor."""
        if self._client is None:
            self._client = connect(self.url, socket_timeout=self._timeout, **self._options)
        return self._client

    async def _eval(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        registered = self._scripts.get(script)
        if registered is None:
            registered = self._scripts[script] = self.client.register_script(script)
        return await registered(keys=list(keys), args=list(args))

    async def ping(self) -> None:
        """On a cluster: every primary the client routes to answers, and the cluster says all slots are served."""
        if not self.cluster:
            await self.client.ping()
            return
        await self.client.ping(target_nodes=RedisCluster.PRIMARIES)
        state = (await self.client.cluster_info()).get("cluster_state")
        if state != "ok":
            raise ClusterDownError(f"cluster_state:{state}: the cluster does not serve every slot yet")

    def note_failure(self) -> None:
        if self.cluster and self._primaries_at_failure is None:
            made = self._client  # never make (connect) a client here: the call that failed had one, or wrote nothing
            self._primaries_at_failure = {node.name for node in made.get_primaries()} if made is not None else set()

    async def promoted(self) -> list[str]:
        """The nodes that serve slots as primaries now and did not when the breaker opened (a failover).

        Asked of the cluster itself (CLUSTER NODES), not of the client's map, which may still be catching up.
        Empty on one server, and when this client had no map yet when it failed (it had written nothing).
        """
        before = self._primaries_at_failure
        if not before:
            self._primaries_at_failure = None
            return []
        nodes: dict[str, Any] = await self.client.cluster_nodes()
        now = {
            name.partition("@")[0]
            for name, node in nodes.items()
            if "master" in node["flags"] and "fail" not in node["flags"] and node["slots"]
        }
        self._primaries_at_failure = None
        return sorted(now - before)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def get(self, key: str) -> bytes | None:
        value: Any = await self.client.get(key)
        return value  # type: ignore[no-any-return]  # bytes: decode_responses=False

    async def getex(self, key: str, ttl_ms: int) -> bytes | None:
        value: Any = await self.client.getex(key, px=ttl_ms)
        return value  # type: ignore[no-any-return]

    async def set(self, key: str, value: bytes, ttl_ms: int, *, nx: bool = False) -> bool:
        return bool(await self.client.set(key, value, px=ttl_ms, nx=nx))

    async def fill(self, key: str, value: bytes, ttl_ms: int, *, expect: bytes | None) -> bool:
        return bool(await self._eval(_lua.CACHE_FILL, [key], [expect or b"", value, ttl_ms]))

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

    async def delete_matching(self, pattern: str, *, servers: Sequence[str] = ()) -> int:
        count = 0
        batch: list[bytes] = []
        scan: dict[str, Any] = {}
        if servers and self.cluster:
            nodes = [self.client.get_node(node_name=name) for name in servers]
            if None in nodes:  # its map does not have the node yet: keep the breaker open until it does
                raise ClusterDownError(f"the client does not know every node of {list(servers)} yet")
            scan["target_nodes"] = nodes
        async for key in self.client.scan_iter(match=pattern, count=1000, **scan):
            batch.append(key)
            if len(batch) >= 500:
                count += await self.client.unlink(*batch)
                batch = []
        if batch:
            count += await self.client.unlink(*batch)
        return count

    async def ctx_read(self, meta: str, lst: str, count: int, *, token: str, ttl_ms: int) -> ContextRead:
        reply = await self._eval(_lua.CTX_READ, [meta, lst], [count, token, ttl_ms])
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
        publish = "SPUBLISH" if self.cluster else "PUBLISH"
        args: list[Any] = [first, last, size, ttl_ms, token, channel, payload, publish, *entries]
        return bool(await self._eval(_lua.CTX_APPEND, [meta, lst], args))

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
        return bool(await self._eval(_lua.CTX_REFILL, [meta, lst], args))

    async def ctx_invalidate(
        self, pairs: Sequence[tuple[str, str]], *, token: str, ttl_ms: int, reset: bool = False
    ) -> None:
        args: list[Any] = [token, ttl_ms, "1" if reset else "0"]
        if len(pairs) == 1:
            await self._eval(_lua.CTX_INVALIDATE, list(pairs[0]), args)
            return
        # EVAL, not EVALSHA: a pipeline cannot load a script that a node (a promoted replica) has never seen.
        for start in range(0, len(pairs), 500):
            async with self.client.pipeline(transaction=False) as pipe:
                for meta, lst in pairs[start : start + 500]:
                    pipe.eval(_lua.CTX_INVALIDATE, 2, meta, lst, *args)
                await pipe.execute()

    async def rate_acquire(
        self, keys: Sequence[str], limits: Sequence[tuple[float, float]], cost: int
    ) -> tuple[int, int, list[int]]:
        args: list[Any] = [cost]
        for capacity, rate in limits:
            args += [repr(float(capacity)), repr(float(rate))]
        reply = await self._eval(_lua.RATE_ACQUIRE, list(keys), args)
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
        if self.cluster:
            await self.client.spublish(channel, payload)
        else:
            await self.client.publish(channel, payload)

    async def subscribe(self, channels: Sequence[str]) -> AsyncSubscription:
        # Its own client: a subscriber waits on reads, which the command client's short timeout would cut.
        subscription = AsyncRedisSubscription(
            lambda: connect(self.url, socket_timeout=None, **self._options), channels, sharded=self.cluster
        )
        await subscription.start()
        return subscription
