"""Types that differ between the async source and its generated sync twin (the one shim of this package).

The async code names ``AsyncLoader``; tools/async_to_sync.py renames it to ``Loader`` in the sync twin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

__all__ = ["AsyncLoader", "Loader"]

T = TypeVar("T")

AsyncLoader: TypeAlias = Callable[[], Awaitable[T]]  # a coroutine function returning T
Loader: TypeAlias = Callable[[], T]
