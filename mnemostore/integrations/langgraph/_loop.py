"""The sync methods of the async saver and store: a call run on their event loop from another thread."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mnemostore.errors import ConfigurationError

T = TypeVar("T")


def run_on_loop(loop: asyncio.AbstractEventLoop | None, call: Callable[[], Awaitable[T]], *, refusal: str) -> T:
    """Run ``call`` on ``loop`` from another thread and wait for its result.

    Raises:
        ConfigurationError: ``loop`` is not running, or this is its own thread (waiting would deadlock it);
            the message is ``refusal``.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or not loop.is_running() or running is loop:
        raise ConfigurationError(refusal)

    async def run() -> T:
        return await call()

    return asyncio.run_coroutine_threadsafe(run(), loop).result()
