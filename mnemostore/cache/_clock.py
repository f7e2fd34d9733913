"""Where the cache reads the time (pure, shared by both twins), so that a test can move time instead of waiting.

``build_cache(settings, clock=...)`` takes a ``Clock``; the default, ``SYSTEM_CLOCK``, reads the system's clocks
exactly as the cache always did. Two readings are needed:

* ``monotonic()``: seconds from an arbitrary origin, for breaker cool-downs and the expiries of the in-process
  cache (the embedded default, and the per-process fallback while Redis is away);
* ``time()``: seconds since the epoch, for presence timestamps, which other processes compare through Redis.

What Redis itself expires (the TTL of a key) follows the Redis server's clock, never this one.
"""

from __future__ import annotations

import time

__all__ = ["SYSTEM_CLOCK", "Clock"]


class Clock:
    """The system's clocks. A test subclasses it with readings it moves itself."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


SYSTEM_CLOCK = Clock()
