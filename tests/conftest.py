"""Test configuration: real servers only (see tests/fix_db.py and tests/fix_redis.py)."""

import os

# Stores built without an explicit embedder use the deterministic hashing embedder: loading the real model in
# every test would cost seconds, and its similarities would change what unrelated tests store (near-duplicate
# merging). Search tests pass the real model explicitly (tests/fix_search.py).
os.environ.setdefault("MNEMOSTORE_EMBEDDER", "hashing")
# Nor does a store start its indexer by itself on the first write (a single program's default): tests that count
# pending jobs, or drain them, decide when jobs are processed. tests/test_indexer_autostart.py turns it on.
os.environ.setdefault("MNEMOSTORE_INDEXER_AUTOSTART", "false")
# The cache tests' numbers (messages appended, pages read past the window's floor) are written around a window of
# 20 messages; the default is 50, the default history page (tests/test_cache_store.py checks that they agree).
os.environ.setdefault("MNEMOSTORE_RECENT_CONTEXT_SIZE", "20")

# The suite's PostgreSQL connection budget: every store keeps one connection and opens at most three more under
# load, so that two copies of the suite fit side by side on one server (max_connections 100). The stores of the
# race tests (tests/test_concurrency.py, tests/test_cache_concurrency.py) ask for fix_db.RACE_POOL instead, so that
# their writers really meet in the database. Set in the environment, this reaches every store the tests make, the HTTP
# app's and the CLI's (in process or not) included; a store given pool_size or max_overflow keeps its own.
os.environ.setdefault("MNEMOSTORE_POOL_SIZE", "1")
os.environ.setdefault("MNEMOSTORE_MAX_OVERFLOW", "3")

pytest_plugins = [
    "tests.fix_citus",
    "tests.fix_db",
    "tests.fix_redis",
    "tests.fix_redis_cluster",
    "tests.fix_backup",
    "tests.fix_api",
    "tests.fix_search",
    "tests.fix_faults",
    "tests.fix_milvus",
]
