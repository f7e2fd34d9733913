"""Use cases: the async store (source) and its generated sync twin.

The package's public face is what the HTTP service and the CLI use besides the store classes: the cursor of a
history position (the event stream's ids).
"""

from mnemostore.service._paging import history_cursor

__all__ = ["history_cursor"]
