"""The indexer: embeds the outbox's pending jobs in batches (async; ``_indexer.py`` is generated from this file).

One pass claims a batch (``AsyncIndexRepository.claim``), reads the items' current text, embeds it outside any
transaction (the model never holds a lock or a connection), then stores the vectors and marks the jobs done in
one transaction. A batch the embedder refuses is retried item by item, so one bad item cannot fail its
neighbours; a failing item goes back with exponential backoff and is marked ``failed`` with its error after
``index_max_attempts``. A worker that dies mid-batch loses nothing: its claims expire after
``index_lease_seconds`` and another pass takes them; the vector upsert is keyed by the item, so an item is
indexed once however often its job runs. With ``vector_backend=milvus`` the batch's entities are written to Milvus
in that last transaction, before it commits (``mnemostore.service._vectors_async``).

It runs in-process (``store.start_indexer()``), as ``mnemostore worker``, or inline (``wait_for_indexing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from mnemostore.config import Settings
from mnemostore.errors import BackendUnavailable, IndexingTimeout
from mnemostore.search import Embedder, IndexingStatus
from mnemostore.service._vectors_async import AsyncVectorMirror
from mnemostore.store import AsyncDatabase, AsyncIndexRepository, AsyncUnitOfWork, ClaimedJob

__all__ = ["AsyncIndexer"]

log = logging.getLogger("mnemostore.indexer")

Key = tuple[str, uuid.UUID, uuid.UUID]


def _now() -> datetime:
    return datetime.now(UTC)


class AsyncIndexer:
    """Processes index jobs of every tenant of one database with one embedder."""

    def __init__(
        self,
        db: AsyncDatabase,
        settings: Settings,
        embedder: Callable[[], Embedder],
        *,
        vectors: AsyncVectorMirror | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._embedder = embedder
        self._mirror = vectors
        self.worker_id = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._vectors: bool | None = None

    async def vectors_supported(self) -> bool:
        if self._vectors is None:
            self._vectors = await self._db.vector_column_is_vector()
        return self._vectors

    def _repo(self, uow: AsyncUnitOfWork) -> AsyncIndexRepository:
        return uow.index_jobs

    async def run_once(self, *, batch_size: int | None = None, tenant_id: uuid.UUID | None = None) -> int:
        """Claim and process one batch (of any tenant's jobs, or of ``tenant_id``'s); returns the number of jobs
        handled (0: nothing was due)."""
        size = batch_size or self._settings.embedding_batch_size
        async with self._db.transaction(tenant_id, write=True) as uow:
            jobs = await self._repo(uow).claim(
                self.worker_id, limit=size, now=_now(), lease_seconds=self._settings.index_lease_seconds
            )
        if not jobs:
            return 0
        store_vectors = await self.vectors_supported()
        vectors: dict[Key, Any] = {}
        failures: list[tuple[ClaimedJob, str]] = []
        embedder = self._embedder()
        if store_vectors:
            async with self._db.transaction(tenant_id) as uow:
                contents = await self._repo(uow).contents(jobs)
            vectors, errors = await self._embed_all(embedder, contents)
            failures = [
                (job, errors[k]) for job in jobs if (k := (job.item_kind, job.tenant_id, job.item_id)) in errors
            ]
        failed = {job.id for job, _ in failures}
        async with self._db.transaction(tenant_id, write=True) as uow:
            repo = self._repo(uow)
            if self._mirror is not None and vectors:
                # Milvus first, in this transaction, with the jobs and the items locked: the entities are written
                # before the vectors commit (a crash in between runs the jobs again, same keys), and a delete of
                # an item waits for the commit, then removes its entity.
                mine = {(j.item_kind, j.tenant_id, j.item_id) for j in await repo.mine(self.worker_id, jobs)}
                entities = await repo.entities({key: vector for key, vector in vectors.items() if key in mine})
                await self._mirror.upsert(embedder.name, embedder.dimension, entities)
            await repo.complete(
                self.worker_id,
                [job for job in jobs if job.id not in failed],
                vectors,
                model=embedder.name,
                dimension=embedder.dimension,
                store_vectors=store_vectors,
                now=_now(),
            )
            if failures:
                await repo.fail(
                    self.worker_id,
                    failures,
                    now=_now(),
                    max_attempts=self._settings.index_max_attempts,
                    retry_base_seconds=self._settings.index_retry_base_seconds,
                )
        return len(jobs)

    async def _embed_all(self, embedder: Embedder, contents: dict[Key, str]) -> tuple[dict[Key, Any], dict[Key, str]]:
        keys = list(contents)
        if not keys:
            return {}, {}
        try:
            return dict(zip(keys, await self._embed(embedder, [contents[k] for k in keys]), strict=True)), {}
        except Exception as error:  # any embedder failure: isolate the bad items below
            if len(keys) == 1:
                return {}, {keys[0]: f"{type(error).__name__}: {error}"}
        vectors: dict[Key, Any] = {}
        errors: dict[Key, str] = {}
        for key in keys:
            try:
                vectors[key] = (await self._embed(embedder, [contents[key]]))[0]
            except Exception as error:  # recorded on the job, visible in `mnemostore health`
                errors[key] = f"{type(error).__name__}: {error}"
        return vectors, errors

    async def _embed(self, embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
        if True:  # ASYNC
            return await asyncio.to_thread(embedder.embed, texts)
        else:
            return embedder.embed(texts)

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set; sleeps ``index_poll_seconds`` when idle, survives outages."""
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except BackendUnavailable as error:
                log.warning("indexer: database unavailable, retrying: %s", error)
                handled = 0
            if handled == 0:
                if True:  # ASYNC
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self._settings.index_poll_seconds)
                else:
                    stop.wait(self._settings.index_poll_seconds)

    async def status(self, tenant_id: uuid.UUID | None = None) -> IndexingStatus:
        async with self._db.transaction(tenant_id) as uow:
            return await uow.index_jobs.status()

    async def open_jobs(self, tenant_id: uuid.UUID | None = None) -> int:
        async with self._db.transaction(tenant_id) as uow:
            return await uow.index_jobs.open_jobs()

    async def drain(
        self,
        *,
        tenant_id: uuid.UUID | None = None,
        timeout_seconds: float = 60.0,
        inline: bool = True,
        progress: Callable[[int], None] | None = None,
        max_jobs: int | None = None,
        stop: asyncio.Event | None = None,
    ) -> IndexingStatus:
        """Wait until no job (of ``tenant_id``, or of any tenant) is pending or running.

        With ``inline`` the jobs are processed here (any tenant's: a claim cannot be limited to one); without,
        another worker is expected to do them and this only watches.

        Args:
            progress: called with the number of jobs of each batch processed here.
            max_jobs: return once this many jobs were processed here, even if others are still open (inline).
            stop: return when it is set, after the current batch; the jobs not done stay pending for the next
                drain or worker.

        Returns:
            The jobs by state when it returned (``pending`` > 0 after ``max_jobs`` or ``stop``).

        Raises:
            IndexingTimeout: jobs were still open after ``timeout_seconds``.
        """
        deadline = time.monotonic() + timeout_seconds
        handled_total = 0
        while True:
            remaining = await self.open_jobs(tenant_id)
            stopped = stop is not None and stop.is_set()
            if remaining == 0 or stopped or (max_jobs is not None and handled_total >= max_jobs):
                return await self.status(tenant_id)
            if time.monotonic() > deadline:
                raise IndexingTimeout(
                    f"{remaining} index jobs still open after {timeout_seconds:g} s: is a worker running "
                    "(`mnemostore worker`, or store.start_indexer())? Jobs of an unreachable embedder wait for it"
                )
            size = self._settings.embedding_batch_size
            if max_jobs is not None:
                size = min(size, max_jobs - handled_total)
            handled = await self.run_once(batch_size=size) if inline else 0
            handled_total += handled
            if progress is not None and handled:
                progress(handled)
            if handled == 0:
                await asyncio.sleep(0.05)
