"""Transitional alias of ``mnemostore.ops.backup`` (the backup functions' public module).

The service still imports this name; delete this module once it imports ``mnemostore.ops.backup``.
"""

from mnemostore.ops.backup import backup, erase_user, restore, user_rows

__all__ = ["backup", "erase_user", "restore", "user_rows"]
