"""Store events over pub/sub (async; ``_events.py`` is generated from this file): the publisher of each tenant's
channel and one subscription to it."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mnemostore.cache import _codec
from mnemostore.cache._backend_async import AsyncSubscription
from mnemostore.cache._types import EventType, Sealer, StoreEvent

if TYPE_CHECKING:
    from mnemostore.cache._cache_async import AsyncCacheClient

__all__ = ["AsyncEventBus", "AsyncEventSubscription"]


class AsyncEventSubscription:
    """The events of one tenant, from the moment of subscribing (at most once: pub/sub keeps no history).

    Use it as an async context manager; iterate it, or call ``get(timeout)``.
    """

    def __init__(self, subscription: AsyncSubscription, sealer: Sealer | None = None) -> None:
        self._subscription = subscription
        self._sealer = sealer
        self._closed = False

    async def get(self, timeout: float | None = None) -> StoreEvent | None:
        """The next event, or None after ``timeout`` seconds without one; its sealed values opened.

        Raises:
            EncryptionKeyError: the event holds a value sealed with a key this process does not have (a
                consumer that stops here resumes from the database, see ``AsyncEventBus``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            item = await self._subscription.get(left if left is None else min(left, 1.0))
            if item is not None:
                event = _codec.decode_event(item[1])
                if self._sealer is not None and self._sealer.envelope_prefix in item[1]:
                    event = _codec.open_event(event, self._sealer)
                return event
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return None

    async def close(self) -> None:
        self._closed = True
        await self._subscription.close()

    async def __aenter__(self) -> AsyncEventSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncEventSubscription:
        return self

    async def __anext__(self) -> StoreEvent:
        while not self._closed:
            event = await self.get(timeout=1.0)
            if event is not None:
                return event
        raise StopAsyncIteration


class AsyncEventBus:
    """Publishes ``message.added``, ``memory.stored`` and ``conversation.archived`` per tenant (pub/sub).

    Pub/sub rather than streams: the database already is the durable log (a consumer that reconnects reads
    what it missed with ``get_conversation_history(after=...)``), so a stream would duplicate it in Redis
    memory; pub/sub costs nothing when nobody listens and rides in the append's own round trip.
    """

    def __init__(self, client: AsyncCacheClient) -> None:
        self.client = client
        self.published = 0
        self.dropped = 0

    def encode(self, tenant_id: uuid.UUID, type: EventType | str, data: dict[str, Any]) -> tuple[str, bytes]:
        event = StoreEvent(type=str(type), tenant_id=tenant_id, at=datetime.now(UTC), data=data)
        return self.client.keys.events(tenant_id), _codec.encode_event(event)

    async def publish(self, tenant_id: uuid.UUID, type: EventType | str, data: dict[str, Any]) -> None:
        channel, payload = self.encode(tenant_id, type, data)
        if await self.client.admit():
            with self.client.guard():
                await self.client.backend.publish(channel, payload)
                self.published += 1
                return
        self.dropped += 1

    async def subscribe(self, tenant_id: uuid.UUID) -> AsyncEventSubscription:
        subscription = await self.client.backend.subscribe([self.client.keys.events(tenant_id)])
        return AsyncEventSubscription(subscription, self.client.sealer)
