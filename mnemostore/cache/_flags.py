"""Transitional alias of ``mnemostore.cache.flags``: the service still imports this name; delete it once it
imports ``mnemostore.cache.flags``."""

from mnemostore.cache.flags import BUCKETS, FLAGS_FIELD, bucket, check_flag, is_enabled, variant

__all__ = ["BUCKETS", "FLAGS_FIELD", "bucket", "check_flag", "is_enabled", "variant"]
