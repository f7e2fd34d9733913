"""Test configuration: real servers only (see tests/fix_db.py and tests/fix_redis.py)."""

import os

# Stores built without an explicit embedder use the deterministic hashing embedder: loading the real model in
# every test would cost seconds, and its similarities would change what unrelated tests store (near-duplicate
# merging). Search tests pass the real model explicitly (tests/fix_search.py).
os.environ.setdefault("MNEMOSTORE_EMBEDDER", "hashing")

pytest_plugins = ["tests.fix_db", "tests.fix_redis", "tests.fix_backup", "tests.fix_api", "tests.fix_search"]
