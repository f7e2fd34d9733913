"""Redis (or in-process) caching, sessions, rate limits, presence, feature flags and events.

``build_cache(settings)`` makes the cache a store uses; see ``_cache_async`` for the features and the staleness
guarantee, ``_lua`` for the recent-context protocol and ``_breaker`` for degraded mode. ``AsyncCache`` is the
source; ``Cache`` its generated sync twin.
"""

from mnemostore.cache._cache import Cache, EventSubscription
from mnemostore.cache._cache import build_cache as build_sync_cache
from mnemostore.cache._cache_async import AsyncCache, AsyncEventSubscription, build_cache
from mnemostore.cache._clock import SYSTEM_CLOCK, Clock
from mnemostore.cache._keys import Keys
from mnemostore.cache._types import BreakerState, ChannelSession, EventType, RateLimitDecision, StoreEvent

__all__ = [
    "SYSTEM_CLOCK",
    "AsyncCache",
    "AsyncEventSubscription",
    "BreakerState",
    "Cache",
    "ChannelSession",
    "Clock",
    "EventSubscription",
    "EventType",
    "Keys",
    "RateLimitDecision",
    "StoreEvent",
    "build_cache",
    "build_sync_cache",
]
