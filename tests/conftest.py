"""Test configuration: real servers only (see tests/fix_db.py and tests/fix_redis.py)."""

pytest_plugins = ["tests.fix_db", "tests.fix_redis", "tests.fix_backup"]
