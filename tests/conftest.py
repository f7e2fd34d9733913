"""Test configuration: real servers only (see tests/fix_db.py)."""

pytest_plugins = ["tests.fix_db"]
