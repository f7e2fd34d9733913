"""Redis (or in-process) caching, sessions, rate limits, presence, feature flags and events.

``build_cache(settings)`` makes the cache a store uses (``AsyncCache.from_settings`` / ``Cache.from_settings``
name the same thing from each twin); see ``_cache_async`` for the features and the staleness guarantee, ``_lua``
for the recent-context protocol and ``_breaker`` for degraded mode. ``AsyncCache`` is the source; ``Cache`` its
generated sync twin. Public modules: ``flags`` (feature-flag values and rollout buckets) and ``ratelimit`` (limit
specs). ``message_json`` is the one JSON shape of a message on the event channel (the HTTP event stream uses it).
"""

from mnemostore.cache import flags, ratelimit
from mnemostore.cache._cache import Cache
from mnemostore.cache._cache import build_cache as build_sync_cache
from mnemostore.cache._cache_async import AsyncCache, build_cache
from mnemostore.cache._clock import SYSTEM_CLOCK, Clock
from mnemostore.cache._codec import API_KEY, CHANNEL_CONFIG, TENANT, USER, Codec, message_json
from mnemostore.cache._events import EventSubscription
from mnemostore.cache._events_async import AsyncEventSubscription
from mnemostore.cache._keys import Keys
from mnemostore.cache._types import BreakerState, ChannelSession, EventType, RateLimitDecision, Sealer, StoreEvent

__all__ = [
    "API_KEY",
    "CHANNEL_CONFIG",
    "SYSTEM_CLOCK",
    "TENANT",
    "USER",
    "AsyncCache",
    "AsyncEventSubscription",
    "BreakerState",
    "Cache",
    "ChannelSession",
    "Clock",
    "Codec",
    "EventSubscription",
    "EventType",
    "Keys",
    "RateLimitDecision",
    "Sealer",
    "StoreEvent",
    "build_cache",
    "build_sync_cache",
    "flags",
    "message_json",
    "ratelimit",
]
