"""Repositories of the search layer: the indexing outbox and the search queries (async; ``_search.py`` is
generated from this file).

They work on the connection of a unit of work, like the other repositories, and never commit. Claims run in the
admin scope (the worker serves every tenant); everything else names the tenant.

Claiming: on PostgreSQL one ``UPDATE … WHERE (tenant_id, id) IN (SELECT … FOR UPDATE SKIP LOCKED)``, so
concurrent workers take disjoint batches without waiting for each other; on SQLite the claim runs in a write
transaction (``BEGIN IMMEDIATE``), which serialises claimers. A claimed job is ``running`` with
``next_attempt_at`` set to the end of its lease: a worker that dies leaves it to be claimed again when the lease
runs out, and the vector upsert is keyed by the item, so a job done twice still leaves one vector.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mnemostore.search import IndexingStatus, ItemKind, SearchFilters, VectorEntity
from mnemostore.store._citus import on_citus
from mnemostore.store._crypto import FieldCodec
from mnemostore.store._index_text import indexed_message_text
from mnemostore.store._search_statements import (
    JOB_KIND,
    OWNED_KINDS,
    TABLES,
    ClaimedJob,
    owned_exact_statement,
    owners_statement,
)
from mnemostore.store._search_statements import allowed_items_statement as _allowed_items
from mnemostore.store._search_statements import allowed_seqs_statement as _allowed_seqs
from mnemostore.store._search_statements import count_statement as _count
from mnemostore.store._search_statements import entity_fields_statement as _entity_fields
from mnemostore.store._search_statements import fulltext_statement as _fulltext
from mnemostore.store._search_statements import hydrate_statement as _hydrate
from mnemostore.store._search_statements import message_neighbours_statement as _neighbours
from mnemostore.store._search_statements import pg_vector_statement as _pg_vector
from mnemostore.store._search_statements import similarities_statement as _similarities
from mnemostore.store._search_statements import vector_page_statement as _vector_page
from mnemostore.store._search_statements import vectors_since_statement as _vectors_since
from mnemostore.store.tables import OPEN_JOBS, embeddings, index_jobs

__all__ = ["AsyncIndexRepository", "AsyncSearchRepository"]

KIND_OF_JOB = {value: kind for kind, value in JOB_KIND.items()}


class AsyncIndexRepository:
    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID | None, *, dialect: str) -> None:
        self._conn = conn
        self._tenant_id = tenant_id
        self._dialect = dialect

    async def enqueue(self, kind: ItemKind, item_ids: Sequence[uuid.UUID], now: datetime) -> None:
        """Insert one pending job per item (in the caller's transaction: the outbox)."""
        from mnemostore.domain import new_id

        assert self._tenant_id is not None
        if not item_ids:
            return
        rows = [
            {
                "tenant_id": self._tenant_id,
                "id": new_id(),
                "item_kind": JOB_KIND[kind],
                "item_id": item_id,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for item_id in item_ids
        ]
        await self._conn.execute(sa.insert(index_jobs), rows)

    async def enqueue_missing(
        self, kind: ItemKind, *, model: str, after: uuid.UUID | None, limit: int, now: datetime
    ) -> tuple[int, uuid.UUID | None]:
        """Enqueue items of ``kind`` (all tenants) with no vector of ``model`` and no open job, ``limit`` ids
        after ``after``; returns (jobs added, last id scanned) for the next call (None: done)."""
        from mnemostore.domain import new_id

        table = TABLES[kind]
        query = sa.select(table.c.tenant_id, table.c.id).order_by(table.c.id).limit(limit)
        if kind is ItemKind.GRAPH_ITEM:
            query = query.where(table.c.content != "")  # an item put without index is not searched by query
        if after is not None:
            query = query.where(table.c.id > after)
        rows = (await self._conn.execute(query)).all()
        if not rows:
            return 0, None
        ids = [row.id for row in rows]
        have = set(
            (
                await self._conn.execute(
                    sa.select(embeddings.c.item_id).where(
                        embeddings.c.item_kind == JOB_KIND[kind],
                        # A vector the caller brought is kept: its item is not the store's to embed.
                        sa.or_(embeddings.c.model == model, embeddings.c.supplied),
                        embeddings.c.item_id.in_(ids),
                    )
                )
            ).scalars()
        )
        have |= set(
            (
                await self._conn.execute(
                    sa.select(index_jobs.c.item_id).where(
                        index_jobs.c.item_kind == JOB_KIND[kind],
                        index_jobs.c.state.in_(("pending", "running")),
                        index_jobs.c.item_id.in_(ids),
                    )
                )
            ).scalars()
        )
        jobs = [
            {
                "tenant_id": row.tenant_id,
                "id": new_id(),
                "item_kind": JOB_KIND[kind],
                "item_id": row.id,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for row in rows
            if row.id not in have
        ]
        if jobs:
            await self._conn.execute(sa.insert(index_jobs), jobs)
        return len(jobs), ids[-1] if len(ids) == limit else None

    async def claim(self, worker: str, *, limit: int, now: datetime, lease_seconds: float) -> list[ClaimedJob]:
        """Take up to ``limit`` due jobs (pending, or running past their lease) for ``worker``: any tenant's in the
        admin scope, the tenant's own in a tenant scope."""
        c = index_jobs.c
        scope = [c.tenant_id == self._tenant_id] if self._tenant_id is not None else []
        due = (
            sa.select(c.tenant_id, c.id)
            .where(*scope, c.state.in_(("pending", "running")), c.next_attempt_at <= now)
            .order_by(c.next_attempt_at)
            .limit(limit)
        )
        claimable: sa.ColumnElement[bool]
        if self._dialect == "postgresql" and not (self._tenant_id is None and on_citus(self._conn)):
            claimable = sa.tuple_(c.tenant_id, c.id).in_(due.with_for_update(skip_locked=True))
        else:
            # SQLite, and Citus across tenants (a multi-shard SELECT cannot lock rows): read the due keys, then
            # update those still due. Concurrent claimers of one key queue on its row, and the later one finds it
            # no longer due (its lease moved next_attempt_at on), so the batches stay disjoint; they wait for each
            # other instead of skipping. A tenant's own claim is single-shard and keeps SKIP LOCKED.
            keys = (await self._conn.execute(due)).all()
            if not keys:
                return []
            claimable = sa.and_(
                sa.tuple_(c.tenant_id, c.id).in_([tuple(k) for k in keys]),
                c.state.in_(("pending", "running")),
                c.next_attempt_at <= now,
            )
        statement = (
            sa.update(index_jobs)
            .where(claimable)
            .values(
                state="running",
                attempts=c.attempts + 1,
                claimed_by=worker,
                claimed_until=now + timedelta(seconds=lease_seconds),
                next_attempt_at=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
            .returning(c.tenant_id, c.id, c.item_kind, c.item_id, c.attempts)
        )
        rows = (await self._conn.execute(statement)).all()
        return [ClaimedJob(r.tenant_id, r.id, r.item_kind, r.item_id, r.attempts) for r in rows]

    async def contents(self, jobs: Sequence[ClaimedJob]) -> dict[tuple[str, uuid.UUID, uuid.UUID], str]:
        """The current text of each job's item, keyed (kind, tenant, item), as it is embedded (a message's with its
        author: ``indexed_message_text``); deleted items are absent."""
        wanted: dict[tuple[str, uuid.UUID], list[uuid.UUID]] = {}
        for job in jobs:
            wanted.setdefault((job.item_kind, job.tenant_id), []).append(job.item_id)
        found: dict[tuple[str, uuid.UUID, uuid.UUID], str] = {}
        for (kind, tenant), ids in wanted.items():
            table = TABLES[KIND_OF_JOB[kind]]
            message = table is TABLES[ItemKind.MESSAGE]
            # A message is embedded with its author (as the database holds it: a sealed author is left out).
            columns = [table.c.id, table.c.content, *([table.c.metadata] if message else [])]
            query = sa.select(*columns).where(table.c.tenant_id == tenant, table.c.id.in_(ids))
            for row in await self._conn.execute(query):
                text = indexed_message_text(row.content, row.metadata) if message else row.content
                found[(kind, tenant, row.id)] = text
        return found

    async def complete(
        self,
        worker: str,
        jobs: Sequence[ClaimedJob],
        vectors: dict[tuple[str, uuid.UUID, uuid.UUID], Any],
        *,
        model: str,
        dimension: int,
        store_vectors: bool,
        now: datetime,
    ) -> int:
        """Store the vectors of items that still exist and mark ``jobs`` done; returns the vectors written.

        Only jobs still claimed by ``worker`` are marked: a worker whose lease ran out leaves them to the next.
        """
        c = index_jobs.c
        keys = [(j.tenant_id, j.id) for j in jobs]
        mine = (
            await self._conn.execute(
                sa.select(c.tenant_id, c.id).where(sa.tuple_(c.tenant_id, c.id).in_(keys), c.claimed_by == worker)
            )
        ).all()
        mine_set = {tuple(row) for row in mine}
        jobs = [j for j in jobs if (j.tenant_id, j.id) in mine_set]
        written = 0
        if store_vectors and jobs:
            owners = await self._lock_existing(jobs)
            claimed = {(j.item_kind, j.tenant_id, j.item_id) for j in jobs}
            rows = [(key, owners[key], vector) for key, vector in vectors.items() if key in owners and key in claimed]
            if rows:
                written = await self._upsert_vectors(rows, model=model, dimension=dimension, now=now)
        if jobs:
            await self._conn.execute(
                sa.update(index_jobs)
                .where(sa.tuple_(c.tenant_id, c.id).in_([(j.tenant_id, j.id) for j in jobs]))
                .values(state="done", claimed_by=None, claimed_until=None, last_error=None, updated_at=now)
            )
        return written

    async def mine(self, worker: str, jobs: Sequence[ClaimedJob]) -> list[ClaimedJob]:
        """The jobs still claimed by ``worker``, locked on PostgreSQL until the transaction ends (another worker's
        claim skips them), so that what this transaction writes for them is not overtaken by a newer claim."""
        c = index_jobs.c
        keys = [(j.tenant_id, j.id) for j in jobs]
        if not keys:
            return []
        query = sa.select(c.tenant_id, c.id).where(sa.tuple_(c.tenant_id, c.id).in_(keys), c.claimed_by == worker)
        if self._dialect == "postgresql":
            query = query.with_for_update()
        found = {tuple(row) for row in (await self._conn.execute(query)).all()}
        return [j for j in jobs if (j.tenant_id, j.id) in found]

    async def entities(
        self, vectors: Mapping[tuple[str, uuid.UUID, uuid.UUID], Any], *, supplied: bool = False
    ) -> list[VectorEntity]:
        """The vectors of items that exist, keyed (kind, tenant, item), as entities of an external vector index with
        their fields (``entity_fields_statement``), in this transaction. The items are locked FOR KEY SHARE on
        PostgreSQL (SQLite's write transaction excludes deleters anyway): an item cannot be deleted before this
        commits, and its delete removes the entity after. ``supplied``: the vectors are the caller's; else items
        holding the caller's vector are left out (the indexer never replaces it)."""
        wanted: dict[tuple[str, uuid.UUID], list[uuid.UUID]] = {}
        for kind, tenant, item in vectors:
            wanted.setdefault((kind, tenant), []).append(item)
        found: list[VectorEntity] = []
        for (kind, tenant), ids in wanted.items():
            item_kind = KIND_OF_JOB[kind]
            query = _entity_fields(item_kind, tenant, ids)
            if self._dialect == "postgresql":
                query = query.with_for_update(key_share=True, of=TABLES[item_kind])
            for row in await self._conn.execute(query):
                if row.supplied and not supplied:
                    continue
                found.append(_entity(item_kind, tenant, row, vectors[(kind, tenant, row.id)]))
        return found

    async def entities_of(
        self, kind: ItemKind, vectors: Sequence[tuple[uuid.UUID, Sequence[float]]]
    ) -> list[VectorEntity]:
        """``entities`` of the caller's vectors of this tenant's items of ``kind``."""
        assert self._tenant_id is not None
        keyed = {(JOB_KIND[kind], self._tenant_id, item): vector for item, vector in vectors}
        return await self.entities(keyed, supplied=True)

    async def stale(
        self, tenant_id: uuid.UUID, kind: ItemKind, ids: Sequence[uuid.UUID], *, model: str
    ) -> list[uuid.UUID]:
        """The ids among ``ids`` whose entity in ``model``'s collection of an external vector index is stale: the
        item is gone, or its vector is now of another model. An item without a vector yet is not stale (its first
        vector may be on its way: written to the index, not yet committed here)."""
        if not ids:
            return []
        current = {row.id: row.model for row in await self._conn.execute(_entity_fields(kind, tenant_id, list(ids)))}
        return [item for item in ids if item not in current or current[item] not in (None, model)]

    async def vector_page(
        self, kind: ItemKind, *, after: tuple[uuid.UUID, uuid.UUID] | None, limit: int
    ) -> list[tuple[str, int, VectorEntity]]:
        """(model, dimension, entity) of up to ``limit`` vectors of ``kind``, every tenant's (the admin scope), in
        (tenant, item) order after ``after``: an external vector index is rebuilt from them."""
        found = []
        for row in await self._conn.execute(_vector_page(kind, after, limit)):
            vector = np.frombuffer(row.vector, dtype=np.float32) if isinstance(row.vector, bytes) else row.vector
            found.append((row.model, int(row.dimension), _entity(kind, row.tenant_id, row, vector)))
        return found

    async def _lock_existing(
        self, jobs: Sequence[ClaimedJob]
    ) -> dict[tuple[str, uuid.UUID, uuid.UUID], uuid.UUID | None]:
        """The jobs' items that still exist, with the user who owns each (``embeddings.owner_id``).

        FOR KEY SHARE (of the item's row) keeps a concurrent delete waiting until this commits; its trigger then
        removes our vector."""
        wanted: dict[tuple[str, uuid.UUID], list[uuid.UUID]] = {}
        for job in jobs:
            wanted.setdefault((job.item_kind, job.tenant_id), []).append(job.item_id)
        found: dict[tuple[str, uuid.UUID, uuid.UUID], uuid.UUID | None] = {}
        for (kind, tenant), ids in wanted.items():
            item_kind = KIND_OF_JOB[kind]
            query = owners_statement(item_kind, tenant, ids)
            if self._dialect == "postgresql":
                query = query.with_for_update(key_share=True, of=TABLES[item_kind])
            for row in await self._conn.execute(query):
                found[(kind, tenant, row.id)] = row.owner
        return found

    async def put_vectors(
        self, kind: ItemKind, vectors: Sequence[tuple[uuid.UUID, Sequence[float]]], *, model: str, now: datetime
    ) -> int:
        """Store vectors the caller computed for items of ``kind`` written in this transaction (``supplied``: the
        indexer never replaces them), and drop the items' pending index jobs; returns the vectors written.
        The caller checked the vectors (finite, one dimension per model: ``model_dimension``)."""
        assert self._tenant_id is not None
        if not vectors:
            return 0
        job_kind = JOB_KIND[kind]
        ids = [item for item, _ in vectors]
        owners = {row.id: row.owner for row in await self._conn.execute(owners_statement(kind, self._tenant_id, ids))}
        rows = [((job_kind, self._tenant_id, item), owners[item], vector) for item, vector in vectors if item in owners]
        c = index_jobs.c
        await self._conn.execute(
            sa.delete(index_jobs).where(
                c.tenant_id == self._tenant_id, c.item_kind == job_kind, c.item_id.in_(ids), c.state == "pending"
            )
        )
        if not rows:
            return 0
        return await self._upsert_vectors(rows, model=model, dimension=len(rows[0][2]), now=now, supplied=True)

    async def drop_supplied(self, kind: ItemKind, item_ids: Sequence[uuid.UUID]) -> None:
        """Delete the caller's vectors of these items (their text changed: the vector described the old one)."""
        e = embeddings.c
        await self._conn.execute(
            sa.delete(embeddings).where(
                e.tenant_id == self._tenant_id,
                e.item_kind == JOB_KIND[kind],
                e.item_id.in_(list(item_ids)),
                e.supplied,
            )
        )

    async def model_dimension(self, model: str) -> int | None:
        """The dimension of this tenant's vectors of ``model`` (of any kind), None when it has none."""
        e = embeddings.c
        query = (
            sa.select(e.dimension)
            .where(e.tenant_id == self._tenant_id, e.item_kind.in_(list(JOB_KIND.values())), e.model == model)
            .limit(1)
        )
        found = (await self._conn.execute(query)).scalar()
        return None if found is None else int(found)

    async def _upsert_vectors(
        self,
        rows: list[tuple[tuple[str, uuid.UUID, uuid.UUID], uuid.UUID | None, Any]],
        *,
        model: str,
        dimension: int,
        now: datetime,
        supplied: bool = False,
    ) -> int:

        first = int(now.timestamp() * 1_000_000)
        if self._dialect == "sqlite":
            # Writers are serialised here (BEGIN IMMEDIATE), so seq follows commit order and never repeats.
            top = (await self._conn.execute(sa.select(sa.func.max(embeddings.c.seq)))).scalar()
            first = max(first, int(top or 0) + 1)
        values = []
        for offset, ((kind, tenant, item), owner, vector) in enumerate(rows):
            stored = (
                np.asarray(vector, dtype=np.float32).tobytes()
                if self._dialect == "sqlite"
                else [float(x) for x in vector]
            )
            values.append(
                {
                    "tenant_id": tenant,
                    "item_kind": kind,
                    "item_id": item,
                    "owner_id": owner,
                    "model": model,
                    "dimension": dimension,
                    "vector": stored,
                    "seq": first + offset,
                    "embedded_at": now,
                    "supplied": supplied,
                }
            )
        insert = (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(embeddings)
        statement = insert.on_conflict_do_update(
            index_elements=["tenant_id", "item_kind", "item_id"],
            set_={
                "owner_id": insert.excluded.owner_id,
                "model": insert.excluded.model,
                "dimension": insert.excluded.dimension,
                "vector": insert.excluded.vector,
                "seq": insert.excluded.seq,
                "embedded_at": insert.excluded.embedded_at,
                "supplied": insert.excluded.supplied,
            },
            # The indexer never replaces a vector the caller brought (a job queued before it arrived).
            where=None if supplied else embeddings.c.supplied == sa.false(),
        )
        await self._conn.execute(statement, values)
        return len(values)

    async def fail(
        self,
        worker: str,
        failures: Sequence[tuple[ClaimedJob, str]],
        *,
        now: datetime,
        max_attempts: int,
        retry_base_seconds: float,
    ) -> None:
        """Put failed jobs back with exponential backoff, or mark them failed after ``max_attempts``."""
        c = index_jobs.c
        for job, error in failures:
            final = job.attempts >= max_attempts
            delay = retry_base_seconds * 2 ** max(0, job.attempts - 1)
            await self._conn.execute(
                sa.update(index_jobs)
                .where(c.tenant_id == job.tenant_id, c.id == job.id, c.claimed_by == worker)
                .values(
                    state="failed" if final else "pending",
                    next_attempt_at=now if final else now + timedelta(seconds=delay),
                    claimed_by=None,
                    claimed_until=None,
                    last_error=error[:2000],
                    updated_at=now,
                )
            )

    async def status(self, *, failures: int = 5) -> IndexingStatus:
        """Jobs by state (of the scope's tenant, or every tenant in the admin scope) and the newest failures."""
        c = index_jobs.c
        scope = [c.tenant_id == self._tenant_id] if self._tenant_id is not None else []
        counts: dict[str, int] = dict(
            (await self._conn.execute(sa.select(c.state, sa.func.count()).where(*scope).group_by(c.state))).all()
        )
        oldest = (
            await self._conn.execute(sa.select(sa.func.min(c.created_at)).where(*scope, c.state == "pending"))
        ).scalar()
        failed_rows = (
            await self._conn.execute(
                sa.select(c.tenant_id, c.item_kind, c.item_id, c.attempts, c.last_error, c.updated_at)
                .where(*scope, c.state == "failed")
                .order_by(c.updated_at.desc())
                .limit(failures)
            )
        ).all()
        if isinstance(oldest, str):  # SQLite hands back text from an aggregate
            oldest = datetime.fromisoformat(oldest)
        return IndexingStatus(
            pending=int(counts.get("pending", 0)),
            running=int(counts.get("running", 0)),
            done=int(counts.get("done", 0)),
            failed=int(counts.get("failed", 0)),
            oldest_pending_at=oldest,
            failures=[
                {
                    "tenant_id": str(r.tenant_id),
                    "item_kind": r.item_kind,
                    "item_id": str(r.item_id),
                    "attempts": r.attempts,
                    "error": r.last_error,
                }
                for r in failed_rows
            ],
        )

    async def open_jobs(self) -> int:
        c = index_jobs.c
        scope = [c.tenant_id == self._tenant_id] if self._tenant_id is not None else []
        query = sa.select(sa.func.count()).select_from(index_jobs).where(*scope, sa.text(OPEN_JOBS))
        return int((await self._conn.execute(query)).scalar_one())

    async def retry_failed(self, now: datetime) -> int:
        c = index_jobs.c
        result = await self._conn.execute(
            sa.update(index_jobs)
            .where(c.state == "failed")
            .values(state="pending", attempts=0, next_attempt_at=now, updated_at=now)
        )
        return int(result.rowcount)

    def _finished_before(self, before: datetime) -> list[Any]:
        # Done jobs keep ``next_attempt_at`` at the end of their last lease, normally after they finished: the
        # bound on it lets the queue index (state, next_attempt_at) find them; ``updated_at`` is when they
        # finished. A job is kept at most one lease longer than the retention asks.
        c = index_jobs.c
        scope = [c.tenant_id == self._tenant_id] if self._tenant_id is not None else []
        return [*scope, c.state == "done", c.next_attempt_at < before, c.updated_at < before]

    async def count_done_before(self, before: datetime) -> int:
        """How many jobs ``prune_done`` would delete (of the scope's tenant, or of every tenant)."""
        query = sa.select(sa.func.count()).select_from(index_jobs).where(*self._finished_before(before))
        return int((await self._conn.execute(query)).scalar_one())

    async def prune_done(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` jobs done before ``before``; returns how many. Pending, running and failed
        jobs are never deleted. Call it in short transactions until it returns less than ``limit``."""
        c = index_jobs.c
        batch = sa.select(c.tenant_id, c.id).where(*self._finished_before(before)).limit(limit)
        keys = [tuple(row) for row in (await self._conn.execute(batch)).all()]
        if not keys:
            return 0
        result = await self._conn.execute(
            sa.delete(index_jobs).where(sa.tuple_(c.tenant_id, c.id).in_(keys), c.state == "done")
        )
        return int(result.rowcount)


class AsyncSearchRepository:
    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID, *, dialect: str, codec: FieldCodec) -> None:
        self._conn = conn
        self.tenant_id = tenant_id
        self._dialect = dialect
        self._codec = codec
        # Learnt by ``pg_semantic``: the tenant's items waiting for the indexer (None: no row told), and whether
        # its last user-filtered search ranked exactly.
        self.waiting: int | None = None
        self.ranked_exactly = False

    async def fulltext(
        self, kind: ItemKind, terms: list[str], filters: SearchFilters, limit: int
    ) -> list[tuple[uuid.UUID, float]]:
        if not terms:
            return []
        statement = _fulltext(kind, terms, filters, self.tenant_id, self._dialect, limit)
        return [(row.id, float(row.score)) for row in await self._conn.execute(statement)]

    async def pg_semantic(
        self,
        kind: ItemKind,
        vector: Sequence[float],
        filters: SearchFilters,
        *,
        model: str,
        dimension: int,
        limit: int,
        exact_max_rows: int,
        exact: bool | None = None,
    ) -> list[tuple[uuid.UUID, float, dict[str, Any]]]:
        """(id, cosine similarity, row) of the nearest items, best first; the transaction carries
        ``pg_search_settings``.

        When filters narrow the search to few items, they are ranked exactly instead of through the HNSW graph:
        faster for a user's 2,000 memories among 100,000 (benchmarks/README.md), exact, and never cut short by
        pgvector's ``hnsw.max_scan_tuples``, where an iterative walk that skips most of what it visits can stop
        before it found ``limit`` rows. A user's items are counted through ``ix_embeddings_owner`` against a bound
        that grows with the table (``owned_exact_statement``); other filters keep at most ``exact_max_rows``
        items. ``exact``: the caller's decision (True or False), which saves the count.
        """
        owner = filters.user_id if kind in OWNED_KINDS else None
        if exact is None:
            exact = False
            if owner is not None and exact_max_rows > 0:
                few = owned_exact_statement(kind, self.tenant_id, owner, max_rows=exact_max_rows)
                exact = bool((await self._conn.execute(few)).scalar_one())
            elif filters.narrows and exact_max_rows > 0:
                count = _count(kind, filters, self.tenant_id, self._dialect, cap=exact_max_rows + 1)
                exact = int((await self._conn.execute(count)).scalar_one()) <= exact_max_rows
        statement = _pg_vector(kind, filters, self.tenant_id, dimension=dimension, exact=exact)
        values = {
            "query_vector": "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float64).tolist())) + "]",
            "tenant_id": self.tenant_id,
            "model": model,
            "row_limit": limit,
        }
        if owner is not None and filters.only_user:
            values["owner_id"] = owner
        self.ranked_exactly = exact
        found = []
        for row in await self._conn.execute(statement, values):
            mapping = self._hit_row(kind, row)
            self.waiting = int(mapping.pop("waiting"))
            found.append((mapping["id"], float(mapping.pop("score")), mapping))
        # relaxed_order may return neighbours slightly out of order.
        return sorted(found, key=lambda hit: -hit[1])

    async def vectors_since(
        self, kind: ItemKind, *, model: str, seq: int
    ) -> list[tuple[uuid.UUID, int, bytes, uuid.UUID | None]]:
        """(item id, seq, vector, owning user) of the vectors of ``model`` written after ``seq``, in seq order."""
        values = {"tenant_id": self.tenant_id, "model": model, "after_seq": seq}
        rows = await self._conn.execute(_vectors_since(kind), values)
        return [(row.item_id, int(row.seq), row.vector, row.owner) for row in rows]

    async def vector_seqs_upto(self, kind: ItemKind, *, model: str, seq: int) -> list[int]:
        """The seqs of this tenant's vectors of ``model`` up to ``seq`` (to check a saved index against)."""
        e = embeddings.c
        query = sa.select(e.seq).where(
            e.tenant_id == self.tenant_id, e.item_kind == JOB_KIND[kind], e.model == model, e.seq <= seq
        )
        return list((await self._conn.execute(query)).scalars())

    async def allowed_items(
        self, kind: ItemKind, filters: SearchFilters, *, model: str, cap: int
    ) -> list[uuid.UUID] | None:
        """The items of ``kind`` that pass the filters and have a vector of ``model``, or None when more than
        ``cap`` do (an external vector index then ranks without the list)."""
        statement = _allowed_items(kind, filters, self.tenant_id, self._dialect, model=model).limit(cap + 1)
        found = list((await self._conn.execute(statement)).scalars())
        return None if len(found) > cap else found

    async def allowed_seqs(self, kind: ItemKind, filters: SearchFilters, *, model: str) -> list[int]:
        statement = _allowed_seqs(kind, filters, self.tenant_id, self._dialect, model=model)
        return list((await self._conn.execute(statement)).scalars())

    async def hydrate(
        self, kind: ItemKind, ids: list[uuid.UUID], filters: SearchFilters, *, model: str | None = None
    ) -> dict[uuid.UUID, Any]:
        if not ids:
            return {}
        statement = _hydrate(kind, ids, filters, self.tenant_id, self._dialect, model=model)
        out: dict[uuid.UUID, Any] = {}
        for row in await self._conn.execute(statement):
            mapping = self._hit_row(kind, row)
            out[mapping["id"]] = mapping
        return out

    def _hit_row(self, kind: ItemKind, row: Any) -> dict[str, Any]:
        mapping = dict(row._mapping)
        if kind is ItemKind.MESSAGE:
            mapping["metadata"] = self._codec.open_metadata(self.tenant_id, mapping["metadata"])
        return mapping

    async def message_neighbours(
        self, ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[uuid.UUID | None, uuid.UUID | None]]:
        """For each message of ``ids``: the ids of the messages just before and just after it in its conversation
        (None at either end). Messages of other tenants or gone are left out."""
        if not ids:
            return {}
        rows = await self._conn.execute(_neighbours(ids, self.tenant_id))
        return {row.id: (row.before, row.after) for row in rows}

    async def similarities(
        self, kind: ItemKind, ids: list[uuid.UUID], vector: Sequence[float], *, model: str, dimension: int
    ) -> dict[uuid.UUID, float]:
        """The cosine similarity of each item of ``ids`` that has a vector of ``model`` to ``vector``."""
        if not ids:
            return {}
        statement = _similarities(kind, ids, self._dialect, dimension)
        values: dict[str, Any] = {"tenant_id": self.tenant_id, "model": model}
        query = np.asarray(vector, dtype=np.float64)
        if self._dialect == "postgresql":
            values["query_vector"] = "[" + ",".join(map(repr, query.tolist())) + "]"
            return {row.item_id: float(row.score) for row in await self._conn.execute(statement, values)}
        rows = (await self._conn.execute(statement, values)).all()
        if not rows:
            return {}
        matrix = np.frombuffer(b"".join(row.vector for row in rows), dtype=np.float32).reshape(len(rows), -1)
        norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
        cosines = (matrix @ query) / np.maximum(norms, 1e-12)
        return {row.item_id: float(c) for row, c in zip(rows, cosines, strict=True)}

    async def vector_models(self) -> dict[str, int]:
        """Vectors of this tenant by model (to tell a user whose vectors are of another model to reindex)."""
        e = embeddings.c
        query = sa.select(e.model, sa.func.count()).where(e.tenant_id == self.tenant_id).group_by(e.model)
        return {model: int(count) for model, count in (await self._conn.execute(query)).all()}


def _entity(kind: ItemKind, tenant_id: uuid.UUID, row: Any, vector: Any) -> VectorEntity:
    return VectorEntity(
        tenant_id=tenant_id,
        kind=kind,
        item_id=row.id,
        vector=vector,
        created_at=row.created_at,
        owner_id=row.owner,
        conversation_id=row.conversation_id,
        role=row.role,
        agent_id=row.agent_id,
        source=row.source,
    )


async def vector_column_is_vector(conn: AsyncConnection, dialect: str) -> bool:
    """Whether ``embeddings.vector`` can hold vectors: always on SQLite; on PostgreSQL when it is pgvector's."""
    if dialect != "postgresql":
        return True
    query = sa.text(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass('embeddings') AND attname = 'vector'"
    )
    return (await conn.execute(query)).scalar() == "vector"


async def ensure_pg_vectors(conn: AsyncConnection, dimension: int) -> None:
    """Turn ``embeddings.vector`` into pgvector's type (when still bytea) and make sure the HNSW index of
    ``dimension`` exists. Raises the driver's error when pgvector is not installed on the server."""
    if not await vector_column_is_vector(conn, "postgresql"):
        await conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
        await conn.execute(sa.text("ALTER TABLE embeddings ALTER COLUMN vector TYPE vector USING NULL"))
    size = int(dimension)
    # Looked up first: CREATE INDEX needs the table's owner even when the index exists, and the store's roles
    # are not (a reindex with the model of an existing index then runs as them).
    exists = sa.text("SELECT to_regclass(:name) IS NOT NULL")
    if (await conn.execute(exists, {"name": f"ix_embeddings_hnsw_{size}"})).scalar():
        return
    await conn.execute(
        sa.text(
            f"CREATE INDEX IF NOT EXISTS ix_embeddings_hnsw_{size} ON embeddings "
            f"USING hnsw ((vector::vector({size})) vector_cosine_ops) WHERE dimension = {size}"
        )
    )
