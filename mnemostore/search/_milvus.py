"""Milvus as the vector index (``vector_backend=milvus``): talks to Milvus, knows nothing of the database.

One collection per embedding model and dimension (``<prefix>_<hash of the model>_<dimension>``), whose entities
are the items' vectors: the primary key is ``<tenant>/<kind>/<item>`` (``entity_key``), so writing an item's
vector again replaces its entity, and the tenant is the partition key. Beside the vector each entity carries the
item's fields that never change after it is written (owner, a message's conversation and role, a memory's agent,
a knowledge chunk's source, the creation time), so that those filters run inside Milvus (``pushed_filters``);
the others are checked by the database. Every query names its tenant: isolation never rests on filtering later.

The database stays the durable copy: the service writes an entity before it commits the vector's row (so Milvus
holds every committed vector, and at worst entities of items deleted meanwhile), reads every hit back from the
database with all filters applied, and removes stale entities (``mnemostore.service._vectors_async``).

``MilvusIndex`` is synchronous (pymilvus is); the async store runs its calls on threads. A local file path as URI
runs Milvus Lite in this process; ``http://host:19530`` a Milvus server: the code is the same.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mnemostore.errors import BackendUnavailable, ConfigurationError
from mnemostore.search._query import SearchFilters
from mnemostore.search._types import ItemKind

__all__ = [
    "MILVUS_HINT",
    "MilvusIndex",
    "VectorEntity",
    "entity_key",
    "milvus_installed",
    "pushed_filters",
]

log = logging.getLogger("mnemostore.search")

MILVUS_HINT = "pip install 'mnemostore[milvus]'"
# Milvus answers at most this many neighbours per query.
MAX_TOP_K = 16_384
# HNSW graph shape, as the embedded index and pgvector build theirs.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
# Keys per delete or lookup call, and entities per scan batch.
BATCH = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# (tenant, kind, item): what an entity is the vector of.
ItemKey = tuple[uuid.UUID, ItemKind, uuid.UUID]
_MODEL = "mnemostore.model"
_DIMENSION = "mnemostore.dimension"


def milvus_installed() -> bool:
    """Whether the milvus extra (pymilvus) can be imported, without importing it."""
    return importlib.util.find_spec("pymilvus") is not None


def entity_key(tenant_id: uuid.UUID, kind: ItemKind, item_id: uuid.UUID) -> str:
    """The primary key of an item's entity: the same for every write of the item's vector."""
    return f"{tenant_id.hex}/{kind.value}/{item_id.hex}"


def _parse_key(key: str) -> ItemKey:
    tenant, kind, item = key.split("/")
    return uuid.UUID(hex=tenant), ItemKind(kind), uuid.UUID(hex=item)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _text(value: str) -> str:
    """A string literal of Milvus's expression language."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class VectorEntity:
    """One item's vector with the fields Milvus filters on (none of them changes once the item is written)."""

    tenant_id: uuid.UUID
    kind: ItemKind
    item_id: uuid.UUID
    vector: Sequence[float]
    created_at: datetime
    owner_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None  # messages
    role: str | None = None  # messages
    agent_id: str | None = None  # memories
    source: str | None = None  # knowledge chunks

    def row(self) -> dict[str, Any]:
        return {
            "pk": entity_key(self.tenant_id, self.kind, self.item_id),
            "tenant_id": self.tenant_id.hex,
            "kind": self.kind.value,
            "item_id": self.item_id.hex,
            "owner_id": self.owner_id.hex if self.owner_id else "",
            "conversation_id": self.conversation_id.hex if self.conversation_id else "",
            "role": self.role or "",
            "agent_id": self.agent_id or "",
            "source": self.source or "",
            "created_at": _micros(self.created_at),
            "vector": [float(x) for x in self.vector],
        }


def pushed_filters(kind: ItemKind, filters: SearchFilters) -> tuple[list[str], bool]:
    """The conditions Milvus evaluates for items of ``kind`` (besides tenant and kind), and whether filters remain
    that only the database can check (fields that change: a memory's tier, kind, conversation or expiry, metadata,
    a graph item's namespace)."""
    conditions: list[str] = []
    rest = bool(filters.metadata)
    if filters.user_id is not None and kind in (ItemKind.MESSAGE, ItemKind.MEMORY):
        conditions.append(f"owner_id == {_text(filters.user_id.hex)}")
    if kind is ItemKind.MESSAGE:
        if filters.conversation_id is not None:
            conditions.append(f"conversation_id == {_text(filters.conversation_id.hex)}")
        if filters.role is not None:
            conditions.append(f"role == {_text(filters.role)}")
    if kind is ItemKind.MEMORY:
        if filters.agent_id is not None:
            conditions.append(f"agent_id == {_text(filters.agent_id)}")
        others = (filters.tier, filters.memory_kind, filters.conversation_id, filters.alive_at)
        rest = rest or any(value is not None for value in others)
    if kind is ItemKind.KNOWLEDGE and filters.source is not None:
        conditions.append(f"source == {_text(filters.source)}")
    if kind is ItemKind.GRAPH_ITEM:
        rest = rest or filters.namespace is not None or filters.alive_at is not None
    if filters.since is not None:
        conditions.append(f"created_at >= {_micros(filters.since)}")
    if filters.until is not None:
        conditions.append(f"created_at < {_micros(filters.until)}")
    return conditions, rest


class MilvusIndex:
    """The items' vectors in Milvus at ``uri`` (see the module's documentation)."""

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        prefix: str = "mnemostore",
        timeout_seconds: float = 30.0,
        ef_search: int = 40,
    ) -> None:
        self.uri = uri
        self._token = token
        self.prefix = prefix
        self._timeout = timeout_seconds
        self._ef = ef_search
        self._client: Any = None
        self._lock = threading.Lock()
        # Milvus Lite takes one writer per collection at a time: this process's writes go one by one.
        self._write_lock = threading.Lock()
        self._known: set[str] = set()  # collections known to exist, loaded by this process

    # -- connection and collections ------------------------------------------------------------------------------

    def _milvus(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    from pymilvus import MilvusClient
                except ImportError as error:
                    raise ConfigurationError(
                        f"MNEMOSTORE_VECTOR_BACKEND=milvus needs the milvus extra, which is not installed: "
                        f"{MILVUS_HINT} (or set another vector backend)"
                    ) from error
                try:
                    self._client = MilvusClient(uri=self.uri, token=self._token or "", timeout=self._timeout)
                except Exception as error:  # pymilvus raises its own and gRPC's errors
                    raise _unavailable(self.uri, error) from error
            return self._client

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        client = self._milvus()
        try:
            return getattr(client, method)(*args, timeout=self._timeout, **kwargs)
        except Exception as error:  # pymilvus raises its own and gRPC's errors
            raise _unavailable(self.uri, error) from error

    def close(self) -> None:
        """Close the connection (a Milvus Lite server started for a file stays up until the process exits)."""
        with self._lock:
            client, self._client = self._client, None
            self._known.clear()
        if client is not None:
            client.close()

    def collection_name(self, model: str, dimension: int) -> str:
        return f"{self.prefix}_{hashlib.sha256(model.encode()).hexdigest()[:16]}_{int(dimension)}"

    def names(self) -> list[str]:
        """The names of this prefix's collections."""
        ours = re.compile(re.escape(self.prefix) + r"_[0-9a-f]{16}_[0-9]+")
        return [name for name in self._call("list_collections") if ours.fullmatch(name)]

    def collections(self) -> dict[str, tuple[str, int] | None]:
        """This prefix's collections, each with its (model, dimension) when Milvus kept them (None otherwise)."""
        found: dict[str, tuple[str, int] | None] = {}
        for name in self.names():
            properties = self._call("describe_collection", name).get("properties") or {}
            model, dimension = properties.get(_MODEL), properties.get(_DIMENSION)
            found[name] = (str(model), int(dimension)) if model is not None and dimension is not None else None
        return found

    def _collection(self, model: str, dimension: int, *, create: bool) -> str | None:
        """The collection of (model, dimension); made (with its index, loaded) when ``create``, else None when
        there is none."""
        name = self.collection_name(model, dimension)
        if name in self._known:
            return name
        with self._write_lock:
            if not self._call("has_collection", name):
                if not create:
                    return None
                self._create(name, model, dimension)
                self._known.add(name)
        return self._ready(name)

    def _ready(self, name: str) -> str:
        """``name``, loaded: a collection found on disk is released until loaded (Milvus Lite after a restart;
        a server keeps it loaded, and loading it again costs a call)."""
        if name not in self._known:
            self._call("load_collection", name)
            self._known.add(name)
        return name

    def _create(self, name: str, model: str, dimension: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, max_length=100, is_primary=True)
        schema.add_field("tenant_id", DataType.VARCHAR, max_length=32, is_partition_key=True)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)
        schema.add_field("item_id", DataType.VARCHAR, max_length=32)
        schema.add_field("owner_id", DataType.VARCHAR, max_length=32)
        schema.add_field("conversation_id", DataType.VARCHAR, max_length=32)
        schema.add_field("role", DataType.VARCHAR, max_length=32)
        schema.add_field("agent_id", DataType.VARCHAR, max_length=800)
        schema.add_field("source", DataType.VARCHAR, max_length=2000)
        schema.add_field("created_at", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dimension))
        index = self._milvus().prepare_index_params()
        index.add_index(
            field_name="vector",
            index_type="HNSW",
            metric_type="COSINE",
            params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION},
        )
        for field in ("kind", "owner_id", "conversation_id"):
            index.add_index(field_name=field, index_type="INVERTED")
        self._call(
            "create_collection",
            name,
            schema=schema,
            consistency_level="Strong",
            properties={_MODEL: model, _DIMENSION: str(int(dimension))},
        )
        # Without waiting for each index (pymilvus polls every 0.5 s): Milvus builds them in the background.
        self._call("create_index", name, index, sync=False)
        self._call("load_collection", name)
        log.info("milvus: created collection %s for %s (%d dimensions)", name, model, dimension)

    def drop(self, name: str) -> None:
        with self._write_lock:
            self._call("drop_collection", name)
            self._known.discard(name)

    # -- writes --------------------------------------------------------------------------------------------------

    def upsert(self, model: str, dimension: int, entities: Sequence[VectorEntity]) -> None:
        """Write the entities into the collection of (model, dimension), made on first use; an item written
        before is replaced (same key), so writing the same item twice leaves one entity."""
        if not entities:
            return
        name = self._collection(model, dimension, create=True)
        rows = [entity.row() for entity in entities]
        with self._write_lock:
            for start in range(0, len(rows), BATCH):
                self._call("upsert", name, rows[start : start + BATCH])

    def delete(self, keys: Sequence[ItemKey], *, names: Sequence[str] | None = None) -> None:
        """Remove the entities of these (tenant, kind, item) from every collection (or from ``names``)."""
        pks = [entity_key(*key) for key in keys]
        if not pks:
            return
        for name in self.names() if names is None else names:
            self._ready(name)
            with self._write_lock:
                for start in range(0, len(pks), BATCH):
                    self._call("delete", name, ids=pks[start : start + BATCH])

    def delete_where(
        self,
        tenant_id: uuid.UUID,
        *,
        kind: ItemKind | None = None,
        owner_id: uuid.UUID | None = None,
        conversation_id: uuid.UUID | None = None,
    ) -> None:
        """Remove every entity of the tenant (of ``kind``, ``owner_id``, ``conversation_id``) in every collection:
        for what can have no new items (a deleted tenant, user or conversation)."""
        expression = _scope(tenant_id, kind=kind, owner_id=owner_id, conversation_id=conversation_id)
        for name in self.names():
            self._ready(name)
            with self._write_lock:
                self._call("delete", name, filter=expression)

    # -- reads ---------------------------------------------------------------------------------------------------

    def search(
        self,
        model: str,
        dimension: int,
        vector: Sequence[float],
        k: int,
        *,
        tenant_id: uuid.UUID,
        kind: ItemKind,
        conditions: Sequence[str] = (),
        item_ids: Sequence[uuid.UUID] | None = None,
    ) -> list[tuple[uuid.UUID, float]]:
        """Up to ``k`` (item id, cosine similarity) of the tenant's items of ``kind`` nearest to ``vector``, best
        first, among those meeting ``conditions`` (``pushed_filters``) and, when given, among ``item_ids``."""
        name = self._collection(model, dimension, create=False)
        if name is None or k <= 0:
            return []
        expression = _scope(tenant_id, kind=kind, extra=conditions)
        if item_ids is not None:
            if not item_ids:
                return []
            expression += " and item_id in [" + ", ".join(_text(item.hex) for item in item_ids) + "]"
        found = self._call(
            "search",
            name,
            data=[[float(x) for x in vector]],
            anns_field="vector",
            limit=min(int(k), MAX_TOP_K),
            filter=expression,
            output_fields=["item_id"],
            search_params={"metric_type": "COSINE", "params": {"ef": max(self._ef, min(int(k), MAX_TOP_K))}},
            consistency_level="Strong",
        )
        return [(uuid.UUID(hex=hit["entity"]["item_id"]), float(hit["distance"])) for hit in found[0]]

    def scan(
        self,
        name: str,
        *,
        tenant_id: uuid.UUID | None = None,
        kind: ItemKind | None = None,
        owner_id: uuid.UUID | None = None,
        conversation_id: uuid.UUID | None = None,
        agent_id: str | None = None,
    ) -> Generator[list[ItemKey]]:
        """The (tenant, kind, item) of the entities of collection ``name`` (of ``tenant_id``, or every tenant's; of
        ``kind``, ``owner_id``, ``conversation_id``, ``agent_id``), in batches."""
        expression = _scope(tenant_id, kind=kind, owner_id=owner_id, conversation_id=conversation_id, agent_id=agent_id)
        client = self._milvus()
        self._ready(name)
        try:
            batches = client.query_iterator(name, batch_size=BATCH, filter=expression, output_fields=["pk"])
        except Exception as error:  # pymilvus raises its own and gRPC's errors
            raise _unavailable(self.uri, error) from error
        try:
            while True:
                try:
                    batch = batches.next()
                except Exception as error:  # pymilvus raises its own and gRPC's errors
                    raise _unavailable(self.uri, error) from error
                if not batch:
                    return
                yield [_parse_key(row["pk"]) for row in batch]
        finally:
            batches.close()

    def present(self, name: str, keys: Sequence[ItemKey]) -> set[str]:
        """The keys (``entity_key``) among ``keys`` that have an entity in collection ``name``."""
        pks = [entity_key(*key) for key in keys]
        found: set[str] = set()
        self._ready(name)
        for start in range(0, len(pks), BATCH):
            rows = self._call("get", name, ids=pks[start : start + BATCH], output_fields=["pk"])
            found.update(row["pk"] for row in rows)
        return found

    def count(self, *, tenant_id: uuid.UUID | None = None, item_id: uuid.UUID | None = None) -> int:
        """Entities in every collection of this prefix (of ``tenant_id``, of ``item_id``)."""
        conditions = []
        if tenant_id is not None:
            conditions.append(f"tenant_id == {_text(tenant_id.hex)}")
        if item_id is not None:
            conditions.append(f"item_id == {_text(item_id.hex)}")
        total = 0
        for name in self.names():
            self._ready(name)
            rows = self._call(
                "query", name, filter=" and ".join(conditions), output_fields=["count(*)"], consistency_level="Strong"
            )
            total += int(rows[0]["count(*)"])
        return total


def _scope(
    tenant_id: uuid.UUID | None,
    *,
    kind: ItemKind | None = None,
    owner_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    agent_id: str | None = None,
    extra: Sequence[str] = (),
) -> str:
    """A filter expression: ``tenant_id`` (None only for scans across tenants) and the other fields given."""
    conditions = [f"tenant_id == {_text(tenant_id.hex)}"] if tenant_id is not None else []
    if kind is not None:
        conditions.append(f"kind == {_text(kind.value)}")
    if owner_id is not None:
        conditions.append(f"owner_id == {_text(owner_id.hex)}")
    if conversation_id is not None:
        conditions.append(f"conversation_id == {_text(conversation_id.hex)}")
    if agent_id is not None:
        conditions.append(f"agent_id == {_text(agent_id)}")
    return " and ".join([*conditions, *extra])


def _unavailable(uri: str, error: Exception) -> BackendUnavailable:
    return BackendUnavailable(
        f"Milvus at {uri} failed ({type(error).__name__}: {error}): is it running and reachable "
        "(MNEMOSTORE_MILVUS_URI, MNEMOSTORE_MILVUS_TOKEN)?"
    )
