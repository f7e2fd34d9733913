"""The store's public seams for the service: the unit of work hands out the search repositories and the vector
probes, and ``to_message`` is the one row -> ``Message`` mapping (for a result row or a mapping of columns).
On SQLite and PostgreSQL (the ``tenant`` fixture)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from mnemostore import Role, TenantStore
from mnemostore.search import IndexingStatus
from mnemostore.store import IndexRepository, SearchRepository, to_message
from mnemostore.store.tables import messages


def test_unit_of_work_hands_out_the_search_repositories(tenant: TenantStore) -> None:
    with tenant._tx() as uow:
        assert isinstance(uow.index_jobs, IndexRepository)
        assert isinstance(uow.search, SearchRepository)
        status = uow.index_jobs.status()
        assert isinstance(status, IndexingStatus)
        assert uow.vector_column_is_vector() in (True, False)
        if uow.dialect == "sqlite":
            assert uow.vector_column_is_vector()


def test_search_needs_a_tenant_scope(tenant: TenantStore) -> None:
    with tenant.store._db.transaction(None) as uow, pytest.raises(ValueError, match="tenant"):
        uow.search  # noqa: B018


def test_to_message_maps_result_rows_and_mappings(tenant: TenantStore) -> None:
    conversation = tenant.create_conversation(tenant.create_user(display_name="ada").id)
    added = tenant.add_message(conversation.id, role="user", content="hello", metadata={"k": 1})
    with tenant._tx() as uow:
        row = uow.connection.execute(sa.select(messages).where(messages.c.id == added.id)).one()
    from_row = to_message(row)
    from_mapping = to_message({**row._mapping, "_bytes": 5})  # extra keys are ignored
    assert from_row == from_mapping == added
    assert from_row.role is Role.USER


def test_to_message_of_plain_values() -> None:
    now = datetime.now(UTC)
    values = {
        "id": uuid.uuid4(),
        "tenant_id": uuid.uuid4(),
        "conversation_id": uuid.uuid4(),
        "seq": 3,
        "role": "assistant",
        "content": "hi",
        "model": None,
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "metadata": None,
        "created_at": now,
        "idempotency_key": "k",
    }
    message = to_message(values)
    assert (message.seq, message.role, message.created_at, message.idempotency_key) == (3, Role.ASSISTANT, now, "k")
