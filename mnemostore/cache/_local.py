"""The in-process cache: the same primitives as the Redis scripts, on dicts under one lock (pure, thread-safe).

It serves the embedded default (no Redis URL), where one process owns the database, and it is the per-process
fallback for rate limits, presence, sessions and events while Redis is unreachable. ``shared_state(name)``
hands every store of a process that uses the same database the same state, so a sync and an async store (or a
CLI command run in-process) never see each other's stale entries.

Each method mirrors one script of ``_lua`` and must keep its semantics: the tests run one feature suite against
both implementations.
"""

from __future__ import annotations

import asyncio
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["LocalState", "LoopSubscriber", "ThreadSubscriber", "glob_to_regex", "shared_state"]

_FOREVER = float("inf")
_SWEEP_EVERY = 1024


class LocalSubscriber:
    """A receiver of published payloads; ``deliver`` may be called from any thread."""

    dropped = 0
    maxsize = 10_000

    def deliver(self, channel: str, payload: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ThreadSubscriber(LocalSubscriber):
    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, bytes]] = queue.Queue(self.maxsize)

    def deliver(self, channel: str, payload: bytes) -> None:
        try:
            self.queue.put_nowait((channel, payload))
        except queue.Full:
            self.dropped += 1


class LoopSubscriber(LocalSubscriber):
    """Delivers into an asyncio.Queue owned by ``loop``, safely from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(self.maxsize)

    def _put(self, item: tuple[str, bytes]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    def deliver(self, channel: str, payload: bytes) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self._put, (channel, payload))


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Redis SCAN MATCH glob (``*``, ``?``, backslash escapes) as a compiled regex."""
    out: list[str] = []
    chars = iter(pattern)
    for c in chars:
        if c == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


class LocalState:
    """Keys with expiry in one dict, guarded by one lock; values are bytes, lists, dicts or bucket tuples."""

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, tuple[Any, float]] = {}
        self._writes = 0
        self._subscribers: dict[str, set[LocalSubscriber]] = {}

    # -- plumbing (call with the lock held) ------------------------------------------------------------------

    def _now_ms(self) -> float:
        return self._clock() * 1000

    def _get(self, key: str) -> Any:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._data[key]
            return None
        return item[0]

    def _put(self, key: str, value: Any, ttl_ms: float | None) -> None:
        expires = _FOREVER if ttl_ms is None else self._clock() + ttl_ms / 1000
        self._data.pop(key, None)  # re-insert: dict order approximates least recently written first
        self._data[key] = (value, expires)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0 or len(self._data) > self.max_keys:
            self._sweep()

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
            del self._data[key]
        excess = len(self._data) - int(self.max_keys * 0.9)
        if excess > 0 and len(self._data) > self.max_keys:
            for key in list(self._data)[:excess]:
                del self._data[key]

    # -- strings ---------------------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._get(key)
            return value if isinstance(value, bytes) else None

    def getex(self, key: str, ttl_ms: int) -> bytes | None:
        with self._lock:
            value = self._get(key)
            if not isinstance(value, bytes):
                return None
            self._data[key] = (value, self._clock() + ttl_ms / 1000)
            return value

    def set(self, key: str, value: bytes, ttl_ms: int, *, nx: bool = False) -> bool:
        with self._lock:
            if nx and self._get(key) is not None:
                return False
            self._put(key, value, ttl_ms)
            return True

    def fill(self, key: str, value: bytes, ttl_ms: int, *, expect: bytes | None) -> bool:
        """Compare-and-set (see CACHE_FILL)."""
        with self._lock:
            if self._get(key) != expect:
                return False
            self._put(key, value, ttl_ms)
            return True

    def delete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def delete_matching(self, pattern: str) -> int:
        regex = glob_to_regex(pattern)
        with self._lock:
            doomed = [k for k in self._data if regex.fullmatch(k)]
            for key in doomed:
                del self._data[key]
            return len(doomed)

    def exists(self, key: str) -> bool:
        with self._lock:
            return self._get(key) is not None

    # -- recent-context window (see _lua for the semantics) -------------------------------------------------

    def ctx_read(
        self, meta_key: str, list_key: str, count: int, *, token: str, ttl_ms: int
    ) -> tuple[str, bool, int, int, bytes]:
        with self._lock:
            meta = self._get(meta_key) or {}
            items = self._get(list_key) or []
            v = meta.get("v")
            if v is None:
                v = token
                meta = {**meta, "v": v}
                self._put(meta_key, meta, ttl_ms)
            if meta.get("ok") != "1" or len(items) != meta.get("n"):
                return v, False, 0, 0, b""
            return v, True, meta["last"], meta["floor"], b",".join(items[-count:] if count > 0 else items)

    def ctx_append(
        self,
        meta_key: str,
        list_key: str,
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
        with self._lock:
            meta = self._get(meta_key)
            items = self._get(list_key) or []
            hw = max(last, (meta or {}).get("hw", 0))
            extend = (
                meta is not None
                and meta.get("ok") == "1"
                and meta.get("last") == first - 1
                and len(items) == meta.get("n")
            )
            if extend:
                assert meta is not None
                new_meta = {"v": token, **meta}
                items = [*items, *entries]
                if len(items) > size:
                    new_meta["floor"] = _seq_of(items[len(items) - size - 1])
                    items = items[-size:]
                new_meta.update(ok="1", last=last, hw=hw, n=len(items))
                self._put(list_key, items, ttl_ms)
            else:
                new_meta = dict(meta or {})
                new_meta.update(ok="0", hw=hw)
                self._data.pop(list_key, None)
            self._put(meta_key, new_meta, ttl_ms)
        if channel:
            self.publish(channel, payload)
        return extend

    def ctx_refill(
        self,
        meta_key: str,
        list_key: str,
        *,
        seen: str,
        token: str,
        last: int,
        floor: int,
        ttl_ms: int,
        entries: Sequence[bytes],
    ) -> bool:
        with self._lock:
            meta = self._get(meta_key) or {}
            v = meta.get("v")
            if v is None or v != seen or last < meta.get("hw", 0):
                return False
            new_meta = {"v": v, "ok": "1", "last": last, "floor": floor, "hw": last, "n": len(entries)}
            self._put(list_key, list(entries), ttl_ms)
            self._put(meta_key, new_meta, ttl_ms)
            return True

    def ctx_invalidate(self, meta_key: str, list_key: str, *, token: str, ttl_ms: int, reset: bool) -> None:
        with self._lock:
            meta = dict(self._get(meta_key) or {})
            meta.update(v=token, ok="0")
            if reset:
                meta["hw"] = 0
            self._data.pop(list_key, None)
            self._put(meta_key, meta, ttl_ms)

    # -- token buckets ---------------------------------------------------------------------------------------

    def rate_acquire(
        self, keys: Sequence[str], limits: Sequence[tuple[float, float]], cost: int
    ) -> tuple[int, int, list[int]]:
        """All-or-nothing over ``keys``; ``limits`` holds (capacity, tokens per ms). See RATE_ACQUIRE."""
        with self._lock:
            now = float(int(self._now_ms()))
            tokens: list[float] = []
            deny, wait = 0, 0
            for i, (key, (cap, rate)) in enumerate(zip(keys, limits, strict=True), start=1):
                bucket = self._get(key)
                tok, ts = bucket if bucket is not None else (cap, now)
                if now > ts:
                    tok = min(cap, tok + (now - ts) * rate)
                tokens.append(tok)
                if tok < cost:
                    w = _ceil(cap / rate) if cost > cap else _ceil((cost - tok) / rate)
                    w = max(w, 1)
                    if w > wait:
                        deny, wait = i, w
            if deny == 0:
                for key, (cap, rate), tok in zip(keys, limits, tokens, strict=True):
                    self._put(key, (tok - cost, now), _ceil((cap - tok + cost) / rate) + 1000)
                tokens = [t - cost for t in tokens]
            return deny, wait, [int(t // 1) for t in tokens]

    # -- presence --------------------------------------------------------------------------------------------

    def presence_touch(self, key: str, member: str, now_ms: int, ttl_ms: int) -> None:
        with self._lock:
            members = dict(self._get(key) or {})
            members[member] = now_ms
            cutoff = now_ms - ttl_ms
            members = {m: ts for m, ts in members.items() if ts >= cutoff}
            self._put(key, members, ttl_ms)

    def presence_leave(self, key: str, member: str) -> None:
        with self._lock:
            members = self._get(key)
            if members is not None:
                members.pop(member, None)

    def presence_members(self, key: str, since_ms: int) -> list[str]:
        with self._lock:
            members = self._get(key) or {}
            return [m for m, ts in sorted(members.items(), key=lambda kv: (kv[1], kv[0])) if ts >= since_ms]

    # -- hashes ----------------------------------------------------------------------------------------------

    def hgetall(self, key: str) -> dict[str, bytes]:
        with self._lock:
            return dict(self._get(key) or {})

    def hset(self, key: str, field: str, value: bytes) -> None:
        with self._lock:
            current = dict(self._get(key) or {})
            current[field] = value
            self._put(key, current, None)

    def hdel(self, key: str, field: str) -> None:
        with self._lock:
            current = self._get(key)
            if current is not None:
                current.pop(field, None)

    # -- pub/sub ---------------------------------------------------------------------------------------------

    def publish(self, channel: str, payload: bytes) -> int:
        with self._lock:
            receivers = list(self._subscribers.get(channel, ()))
        for receiver in receivers:
            receiver.deliver(channel, payload)
        return len(receivers)

    def has_subscribers(self, channel: str) -> bool:
        return bool(self._subscribers.get(channel))

    def subscribe(self, channels: Sequence[str], receiver: LocalSubscriber) -> None:
        with self._lock:
            for channel in channels:
                self._subscribers.setdefault(channel, set()).add(receiver)

    def unsubscribe(self, receiver: LocalSubscriber) -> None:
        with self._lock:
            for channel in list(self._subscribers):
                self._subscribers[channel].discard(receiver)
                if not self._subscribers[channel]:
                    del self._subscribers[channel]


def _seq_of(entry: bytes) -> int:
    return int(entry[1 : entry.index(b",")])


def _ceil(value: float) -> int:
    whole = int(value)
    return whole if whole >= value else whole + 1


_registry: dict[str, LocalState] = {}
_registry_lock = threading.Lock()


def shared_state(name: str, *, max_keys: int) -> LocalState:
    """The process-wide state for ``name`` (the database URL and key prefix), created on first use."""
    with _registry_lock:
        state = _registry.get(name)
        if state is None:
            state = _registry[name] = LocalState(max_keys=max_keys)
        return state
