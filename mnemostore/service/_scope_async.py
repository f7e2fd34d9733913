"""What every per-tenant capability stands on: the tenant's id, its transactions, usage charges, the index outbox."""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from mnemostore.domain import (
    Tenant,
)
from mnemostore.errors import (
    ConversationNotFound,
    InvalidInput,
    InvalidVector,
    MnemostoreError,
    ModelNotAllowed,
    QuotaExceeded,
    TenantNotFound,
    VectorDimensionMismatch,
    VectorSearchUnavailable,
)
from mnemostore.search import ItemKind
from mnemostore.service import _validation as v
from mnemostore.service._inputs import utc_now
from mnemostore.service._runtime_async import AsyncStoreRuntime
from mnemostore.store import AsyncUnitOfWork

if TYPE_CHECKING:
    from mnemostore.service.store_async import AsyncMnemoStore

Method = TypeVar("Method", bound=Callable[..., Any])

log = logging.getLogger("mnemostore.memory")


def _binding(method: Method) -> Method:
    """``method``, preceded by the tenant lookup of a view opened by name (a no-op once the id is known)."""

    @functools.wraps(method)
    async def bound(self: AsyncTenantScope, *args: Any, **kwargs: Any) -> Any:
        if self._tenant_id is None:
            await self._bind()
        return await method(self, *args, **kwargs)

    return cast("Method", bound)


class AsyncTenantScope:
    """The tenant binding shared by the capability mixins of ``AsyncTenantStore``."""

    def __init__(self, store: AsyncMnemoStore, runtime: AsyncStoreRuntime, tenant: uuid.UUID | str) -> None:
        self.store = store
        self._tenant_id = tenant if isinstance(tenant, uuid.UUID) else None
        self._tenant_name = tenant if isinstance(tenant, str) else None
        self._runtime = runtime
        self._settings = runtime.settings
        self._cache = runtime.cache

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every public method of a view opened by tenant name first looks the name up (once per view)."""
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if name.startswith("_"):
                continue
            if True:  # ASYNC
                if inspect.iscoroutinefunction(member):
                    setattr(cls, name, _binding(member))
            elif inspect.isfunction(member):
                setattr(cls, name, _binding(member))

    @property
    def tenant_id(self) -> uuid.UUID:
        """The tenant's id. A view opened by name (``store.tenant("acme")``) knows it after its first call.

        Raises:
            InvalidInput: the view was opened by name and has made no call yet (``await t.resolve()`` binds it).
        """
        if self._tenant_id is None:
            raise InvalidInput(
                f"the view of tenant {self._tenant_name!r} was opened by name and has not looked it up yet: "
                "call any of its methods first (await t.resolve() returns the tenant)"
            )
        return self._tenant_id

    async def resolve(self) -> Tenant:
        """The tenant this view works on (a view opened by name looks the name up here, once).

        Raises:
            TenantNotFound: no tenant has this id or name.
        """
        if self._tenant_id is None:
            await self._bind()
        return await self._tenant_or_raise()

    async def _bind(self) -> None:
        assert self._tenant_name is not None
        tenant = await self.store.get_tenant_by_name(self._tenant_name)
        if tenant is None:
            raise TenantNotFound(repr(self._tenant_name), ": no tenant has this name (see mnemostore tenant list)")
        self._tenant_id = tenant.id

    def _tx(self, *, write: bool = False) -> AbstractAsyncContextManager[AsyncUnitOfWork]:
        return self._runtime.transaction(self.tenant_id, write=write)

    def _json(self, value: Any, field: str) -> dict[str, Any]:
        return v.check_json(value, field, max_bytes=self._settings.max_metadata_bytes, allow_none=True)

    async def _charge(self, uow: AsyncUnitOfWork, **amounts: int) -> None:
        """Count a write against the tenant's usage, or raise QuotaExceeded (the transaction then rolls back)."""
        if await uow.tenants.charge(**amounts):
            return
        tenant = await uow.tenants.get(self.tenant_id)
        if tenant is None:
            raise TenantNotFound(self.tenant_id)
        usage = await uow.tenants.usage(self.tenant_id)
        assert usage is not None
        q = tenant.quotas
        for name, limit, used, amount in (
            ("max_users", q.max_users, usage.users, amounts.get("users", 0)),
            ("max_messages", q.max_messages, usage.messages, amounts.get("messages", 0)),
            ("max_storage_bytes", q.max_storage_bytes, usage.storage_bytes, amounts.get("storage_bytes", 0)),
        ):
            if limit is not None and amount > 0 and used + amount > limit:
                raise QuotaExceeded(self.tenant_id, name, limit)
        raise QuotaExceeded(self.tenant_id, "usage", 0)  # pragma: no cover - charge() and this check agree

    async def _enqueue(self, uow: AsyncUnitOfWork, kind: ItemKind, item_ids: list[uuid.UUID], now: datetime) -> None:
        """The outbox: index jobs of written items, in the transaction that writes them."""
        if item_ids and self._settings.embedder != "none":
            await uow.index_jobs.enqueue(kind, item_ids, now)
            self._runtime.queued_for_indexing()

    async def _check_models(self, models: Iterable[str | None]) -> None:
        """Refuse a model the tenant's plan does not allow (``Quotas.allowed_models``), before anything is written.

        Read from the tenant's record as ``get_tenant`` caches it (the HTTP service has just read it to
        authenticate the request, so this is a cache hit): ``update_tenant_config`` drops that record everywhere,
        so a model taken out of the plan is refused at once, or at worst ``Settings.cache_ttl_seconds`` later.
        No look-up at all when nothing names a model.

        Raises:
            ModelNotAllowed: names the model and the allowed ones.
        """
        named = [model for model in dict.fromkeys(models) if model is not None]
        if not named:
            return
        allowed = (await self._tenant_or_raise()).quotas.allowed_models
        if allowed is None:
            return
        for model in named:
            if model not in allowed:
                raise ModelNotAllowed(self.tenant_id, model, allowed)

    async def _recalled(self, memory_ids: Iterable[uuid.UUID]) -> None:
        """Count a recall of each of these memories (returned by retrieval or search) now.

        One UPDATE for the whole call, in a short write transaction of its own after the read's: the read keeps
        its read-only transaction (the call then waits for this short write, on SQLite for the write lock), and a
        count that fails (the database busy or gone) is logged (``mnemostore.memory``) and lost, never the read's
        failure. A read-only API key counts too: a recall is the reader's use of a memory, not a change of it,
        and the lifecycle would otherwise never see what read-only agents rely on. Off with
        ``MNEMOSTORE_MEMORY_RECALL_TRACKING=false``.
        """
        ids = list(dict.fromkeys(memory_ids))
        if not ids or not self._settings.memory_recall_tracking:
            return
        try:
            async with self._tx(write=True) as uow:
                await uow.memories.record_recalls(ids, utc_now())
        except MnemostoreError as error:
            log.warning("could not count the recall of %d memories of tenant %s: %s", len(ids), self.tenant_id, error)

    def _caller_vector(self, vector: Any, model: str | None, *, field: str = "vector") -> tuple[list[float], str]:
        """A caller's vector, checked, with the name of the model that computed it (default: the store's embedder,
        whose dimension it must then have)."""
        values = v.check_vector(vector, field)
        embedder = self._runtime.search_engine.embedder()
        if model is None:
            if embedder is None:
                raise InvalidVector(
                    f"{field} needs model=: the name of the model that computed it (this store has no embedder "
                    "whose name it could default to)"
                )
            model = embedder.name
        name = v.check_name(model, "model", max_len=200, required=True)
        assert name is not None
        if embedder is not None and name == embedder.name and len(values) != embedder.dimension:
            raise VectorDimensionMismatch(name, embedder.dimension, len(values))
        return values, name

    async def _put_vectors(
        self,
        uow: AsyncUnitOfWork,
        kind: ItemKind,
        vectors: Sequence[tuple[uuid.UUID, list[float]]],
        model: str,
        now: datetime,
    ) -> None:
        """Store the caller's vectors of items written in ``uow``: one dimension per model in a tenant (the same
        check as the store's own vectors), instead of queueing the items for the indexer."""
        if not vectors:
            return
        if not await self._runtime.search_engine.vectors_supported(uow):
            raise VectorSearchUnavailable(
                "storing vectors needs the pgvector extension, which this PostgreSQL does not have: install pgvector "
                "on the server, then run `mnemostore reindex`; store the item without vector= meanwhile"
            )
        dimensions = {len(vector) for _, vector in vectors}
        known = await uow.index_jobs.model_dimension(model)
        expected = known if known is not None else len(vectors[0][1])
        for got in sorted(dimensions):
            if got != expected:
                raise VectorDimensionMismatch(model, expected, got)
        await uow.index_jobs.put_vectors(kind, vectors, model=model, now=now)
        if self._runtime.vectors is not None:
            # Into Milvus before the item commits (a failure rolls the write back): see service/_vectors_async.
            entities = await uow.index_jobs.entities_of(kind, vectors)
            await self._runtime.vectors.upsert(model, expected, entities)

    async def _check_conversation(self, uow: AsyncUnitOfWork, conversation_id: uuid.UUID | None) -> None:
        if conversation_id is not None and await uow.conversations.get(conversation_id) is None:
            raise ConversationNotFound(conversation_id)

    async def _tenant_or_raise(self) -> Tenant:
        tenant = await self.store.get_tenant(self.tenant_id)
        if tenant is None:
            raise TenantNotFound(self.tenant_id)
        return tenant
