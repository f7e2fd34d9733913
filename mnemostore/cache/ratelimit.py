"""Rate-limit rules: parsing the configured limits and choosing which apply (pure, shared by both twins).

A limit is written ``"60/minute"`` (also ``/second``, ``/hour``, ``/day``, ``/30s``, ``/5m``) or
``{"limit": 60, "window": 60}`` (window in seconds), under one of the scopes ``tenant``, ``user``, ``api_key``
and ``ip``. A channel's ``rate_limits`` override the tenant's ``config["rate_limits"]``, which override
``Settings.default_rate_limits``, scope by scope.

Each limit is a token bucket of ``limit`` tokens refilled at ``limit / window`` per second: it allows bursts of
``limit`` and ``limit`` per window on average, and costs one small hash per bucket (a sliding-window log would
keep one entry per request). All buckets of one check are taken or refused together, atomically.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mnemostore.errors import InvalidInput

__all__ = ["SCOPES", "Limit", "parse_limit", "resolve_limits"]

SCOPES = ("tenant", "user", "api_key", "ip")
_UNITS = {
    **dict.fromkeys(("s", "sec", "second"), 1),
    **dict.fromkeys(("m", "min", "minute"), 60),
    **dict.fromkeys(("h", "hour"), 3600),
    **dict.fromkeys(("d", "day"), 86400),
}
_TEXT = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Limit:
    limit: int
    window: float  # seconds
    source: str  # "channel", "tenant" or "default"

    @property
    def rate_per_ms(self) -> float:
        return self.limit / (self.window * 1000)


def parse_limit(spec: Any, *, where: str, source: str = "tenant") -> Limit:
    limit: Any = None
    window: Any = None
    if isinstance(spec, str):
        match = _TEXT.match(spec.lower())
        unit = match.group(3) if match else ""
        if unit not in _UNITS and unit.endswith("s"):
            unit = unit[:-1]  # plural: "minutes"
        if match and unit in _UNITS:
            limit = int(match.group(1))
            window = float(match.group(2) or 1) * _UNITS[unit]
    elif isinstance(spec, Mapping):
        limit, window = spec.get("limit"), spec.get("window")
    if (
        isinstance(limit, int)
        and not isinstance(limit, bool)
        and limit >= 1
        and isinstance(window, int | float)
        and not isinstance(window, bool)
        and math.isfinite(window)
        and window > 0
    ):
        return Limit(limit, float(window), source)
    raise InvalidInput(
        f'rate limit {where} is {spec!r}: write it as "60/minute" (or /second, /hour, /day, /30s) '
        'or {"limit": 60, "window": 60} with a positive limit and window in seconds'
    )


def resolve_limits(
    default: Mapping[str, Any] | None,
    tenant: Mapping[str, Any] | None,
    channel: Mapping[str, Any] | None,
) -> dict[str, Limit]:
    """The limit of each scope, the most specific configuration winning."""
    out: dict[str, Limit] = {}
    for source, rules in (("default", default), ("tenant", tenant), ("channel", channel)):
        if not rules:
            continue
        if not isinstance(rules, Mapping):
            raise InvalidInput(f"{source} rate_limits must be an object keyed by scope ({', '.join(SCOPES)})")
        for scope, spec in rules.items():
            if scope not in SCOPES:
                raise InvalidInput(f"{source} rate_limits has unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
            if spec is None:
                out.pop(scope, None)
            else:
                out[scope] = parse_limit(spec, where=f"{source}.{scope}", source=source)
    return out
