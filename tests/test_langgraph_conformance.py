"""LangGraph's own conformance suite for checkpointers (``langgraph-checkpoint-conformance``), on both savers and
both backends.

The suite detects a saver's capabilities by the methods it overrides and runs each capability's tests against a
fresh saver (here: a saver on a new tenant of the session's database). Every capability must be detected and pass
with the number of tests the suite has for it, so a capability the suite stopped detecting (or running) fails
here instead of passing silently.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES, Capability
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from langgraph.checkpoint.conformance.spec.test_copy_thread import ALL_COPY_THREAD_TESTS
from langgraph.checkpoint.conformance.spec.test_delete_for_runs import ALL_DELETE_FOR_RUNS_TESTS
from langgraph.checkpoint.conformance.spec.test_delete_thread import ALL_DELETE_THREAD_TESTS
from langgraph.checkpoint.conformance.spec.test_get_tuple import ALL_GET_TUPLE_TESTS
from langgraph.checkpoint.conformance.spec.test_list import ALL_LIST_TESTS
from langgraph.checkpoint.conformance.spec.test_prune import ALL_PRUNE_TESTS
from langgraph.checkpoint.conformance.spec.test_put import ALL_PUT_TESTS
from langgraph.checkpoint.conformance.spec.test_put_writes import ALL_PUT_WRITES_TESTS

from mnemostore import AsyncMnemoStore, MnemoStore
from mnemostore.integrations.langgraph import AsyncMnemostoreSaver, MnemostoreSaver

SUITE = {
    Capability.PUT: ALL_PUT_TESTS,
    Capability.PUT_WRITES: ALL_PUT_WRITES_TESTS,
    Capability.GET_TUPLE: ALL_GET_TUPLE_TESTS,
    Capability.LIST: ALL_LIST_TESTS,
    Capability.DELETE_THREAD: ALL_DELETE_THREAD_TESTS,
    Capability.DELETE_FOR_RUNS: ALL_DELETE_FOR_RUNS_TESTS,
    Capability.COPY_THREAD: ALL_COPY_THREAD_TESTS,
    Capability.PRUNE: ALL_PRUNE_TESTS,
}


def test_every_capability_is_run() -> None:
    assert set(SUITE) == set(ALL_CAPABILITIES)


@pytest.fixture(scope="module")
def sync_store(database_url: str) -> Iterator[MnemoStore]:
    store = MnemoStore(database_url)
    yield store
    store.close()


@pytest.mark.parametrize("saver_kind", ["async", "sync"])
@pytest.mark.parametrize("capability", sorted(SUITE, key=lambda c: c.value), ids=lambda c: c.value)
async def test_conformance(
    capability: Capability, saver_kind: str, astore: AsyncMnemoStore, sync_store: MnemoStore
) -> None:
    async def fresh_saver() -> AsyncIterator[BaseCheckpointSaver]:
        tenant = await astore.create_tenant(f"langgraph-{uuid.uuid4().hex[:12]}")
        if saver_kind == "async":
            yield AsyncMnemostoreSaver(astore.tenant(tenant.id))
        else:
            yield MnemostoreSaver(sync_store.tenant(tenant.id))

    registered = checkpointer_test(name=f"mnemostore-{saver_kind}")(fresh_saver)
    errors: list[str] = []

    def on_test_result(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            errors.append(f"{test}:\n{error}")

    progress = ProgressCallbacks(on_test_result=on_test_result)
    report = await validate(registered, capabilities={capability.value}, progress=progress)
    result = report.results[capability.value]
    assert result.detected, f"{capability.value} is not detected on the {saver_kind} saver"
    assert errors == [], "\n".join(errors)
    assert (result.passed, result.tests_passed, result.tests_failed) == (True, len(SUITE[capability]), 0)
