"""The base of every repository: a connection, the tenant scope, the field codec (async; ``_repository.py`` is
generated from this).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from mnemostore.store._crypto import FieldCodec

Values = dict[str, Any]


class AsyncRepository:
    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID | None, *, codec: FieldCodec) -> None:
        self._conn = conn
        self._tenant_id = tenant_id
        # Every sensitive value written is sealed, and every row read opened, by this codec (store._crypto).
        self._codec = codec

    @property
    def tenant_id(self) -> uuid.UUID:
        if self._tenant_id is None:
            raise RuntimeError("this operation needs a tenant scope, not the admin scope")
        return self._tenant_id


class InsertedRow:
    """Attribute access over a dict, so values we just inserted map like a fetched row (no RETURNING trip)."""

    __slots__ = ("_values",)

    def __init__(self, values: Values) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None
