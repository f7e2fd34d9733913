"""The three-line memory API: ``Memory`` (sync) and ``AsyncMemory``, keyed by the caller's own user ids, on top of
the full store (``memory.store``, ``memory.tenant``)."""

from mnemostore.facade._memory import Memory
from mnemostore.facade._memory_async import AsyncMemory

__all__ = ["AsyncMemory", "Memory"]
