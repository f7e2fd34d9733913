"""Feature flags and A/B assignment, as pure functions (shared by both twins).

A flag's value is one of:

* ``true`` / ``false``: on or off for everyone;
* a number from 0 to 100: on for that percentage of users;
* ``{"variants": {"control": 50, "treatment": 50}, "enabled": true, "seed": "v2"}``: each user gets one
  variant, in proportion to the integer weights (``enabled`` defaults to true; ``seed`` reshuffles).

Assignment is sticky and deterministic without storing anything: a user's bucket is a hash of (tenant, flag,
seed, user), so every process and every restart agrees, and changing a percentage only moves the users
between the old and new thresholds. Scopes override each other from the most specific: the channel's config
(``settings["feature_flags"]``), then the tenant's (``config["feature_flags"]``), then global overrides set at
run time (``set_global_feature_flag``), then ``Settings.feature_flags``. The configs are read through the
cache with invalidation on every write, so a change takes effect at once, without a restart.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from typing import Any

from mnemostore.errors import InvalidInput

__all__ = ["BUCKETS", "FLAGS_FIELD", "bucket", "check_flag", "is_enabled", "variant"]

FLAGS_FIELD = "feature_flags"
BUCKETS = 10_000


def check_flag(name: str, value: Any) -> Any:
    """Return ``value`` if it is a valid flag value, else raise InvalidInput saying what a flag looks like."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if math.isfinite(value) and 0 <= value <= 100:
            return value
    elif isinstance(value, Mapping):
        variants = value.get("variants")
        extra = set(value) - {"variants", "enabled", "seed"}
        if (
            not extra
            and isinstance(variants, Mapping)
            and variants
            and all(isinstance(k, str) and k for k in variants)
            and all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in variants.values())
            and sum(variants.values()) > 0
            and isinstance(value.get("enabled", True), bool)
            and isinstance(value.get("seed", ""), str)
        ):
            return dict(value)
    raise InvalidInput(
        f"feature flag {name!r} has value {value!r}: use true/false, a percentage 0-100, or "
        '{"variants": {"a": 50, "b": 50}} with non-negative integer weights'
    )


def bucket(tenant_id: uuid.UUID | None, flag: str, subject: str, seed: str = "") -> int:
    """The subject's fixed bucket in [0, BUCKETS) for this flag."""
    digest = hashlib.blake2b(f"{tenant_id}\x1f{flag}\x1f{seed}\x1f{subject}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def is_enabled(value: Any, *, tenant_id: uuid.UUID | None, flag: str, subject: str | None) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if value >= 100:
            return True
        if subject is None or value <= 0:
            return False
        return bucket(tenant_id, flag, subject) < value * BUCKETS / 100
    return bool(value.get("enabled", True)) and (
        subject is None or variant(value, tenant_id=tenant_id, flag=flag, subject=subject) is not None
    )


def variant(value: Any, *, tenant_id: uuid.UUID | None, flag: str, subject: str) -> str | None:
    """The subject's variant of a variants flag (None if the flag is off, unknown or has no variants)."""
    if not isinstance(value, Mapping) or not value.get("enabled", True):
        return None
    weights: Mapping[str, int] = value["variants"]
    total = sum(weights.values())
    point = bucket(tenant_id, flag, subject, value.get("seed", "")) * total // BUCKETS
    for name, weight in weights.items():
        if point < weight:
            return name
        point -= weight
    return None  # pragma: no cover - point < total always lands on a variant
