"""A single program with an embedder needs no worker: its store starts the indexer on the first write that queues
items to embed (``indexer_autostart``), and a search finds what was just written even while that indexer holds
the items (its first batch loads the model)."""

from __future__ import annotations

import uuid

import pytest

from mnemostore import IndexingTimeout, MnemoStore, SearchMode


def _store(database_url: str, **overrides: object) -> MnemoStore:
    return MnemoStore(database_url, **overrides)  # the suite's hashing embedder (tests/conftest.py)


def test_first_write_that_queues_items_starts_the_indexer(database_url: str) -> None:
    store = _store(database_url, indexer_autostart=True)
    try:
        t = store.tenant(store.create_tenant(f"auto-{uuid.uuid4().hex[:8]}").id)
        user = t.create_user(display_name="Ada")
        assert not store.indexer_running  # a write with nothing to embed starts nothing
        t.store_memory("Ada prefers window seats", user_id=user.id)
        assert store.indexer_running
        # Nobody else processes the jobs (inline=False only watches): the background indexer does.
        status = store.wait_for_indexing(inline=False, timeout_seconds=30)
        assert status.pending == status.running == 0
        assert t.indexing_status().done >= 1
    finally:
        store.close()
    assert not store.indexer_running


def test_without_autostart_jobs_wait_for_a_worker(database_url: str) -> None:
    store = _store(database_url, indexer_autostart=False)
    try:
        t = store.tenant(store.create_tenant(f"manual-{uuid.uuid4().hex[:8]}").id)
        t.store_memory("Ada prefers aisle seats")
        assert not store.indexer_running
        with pytest.raises(IndexingTimeout):
            store.wait_for_indexing(inline=False, timeout_seconds=0.2)
        assert t.indexing_status().pending == 1
    finally:
        store.close()


def test_search_waits_for_its_own_indexer_holding_the_new_items(vector_url: str) -> None:
    store = _store(vector_url, indexer_autostart=True)
    try:
        t = store.tenant(store.create_tenant(f"ryw-{uuid.uuid4().hex[:8]}").id)
        memory = t.store_memory("Ada keeps bees on the roof")
        hits = t.search("bees roof", mode=SearchMode.SEMANTIC, kinds=["memories"])
        assert hits.pending == 0
        assert [h.id for h in hits] == [memory.id]
    finally:
        store.close()
