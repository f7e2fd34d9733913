"""Transitional alias of ``mnemostore.ops.backup_async`` (the backup functions' public module).

The service still imports this name; delete this module once it imports ``mnemostore.ops.backup_async``.
"""

from mnemostore.ops.backup_async import backup, erase_user, restore, user_rows

__all__ = ["backup", "erase_user", "restore", "user_rows"]
