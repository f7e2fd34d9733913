"""Transitional alias of ``mnemostore.cache.ratelimit``: the service still imports this name; delete it once it
imports ``mnemostore.cache.ratelimit``."""

from mnemostore.cache.ratelimit import SCOPES, Limit, parse_limit, resolve_limits

__all__ = ["SCOPES", "Limit", "parse_limit", "resolve_limits"]
