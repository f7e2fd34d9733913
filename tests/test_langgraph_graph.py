"""A real LangGraph graph on mnemostore: a human-in-the-loop ``interrupt``, resumed by a new process, then time
travel to the checkpoint before the human answered, where another answer forks the thread.

Runs on SQLite and PostgreSQL (the ``database_url`` fixture); the graph is tests/langgraph_graphs.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from langgraph.types import Command

from mnemostore import AsyncMnemoStore, AsyncTenantStore, ConfigurationError
from mnemostore.integrations.langgraph import AsyncMnemostoreSaver
from tests.langgraph_graphs import builder

ROOT = Path(__file__).resolve().parent.parent


def resume_in_new_process(database_url: str, tenant: AsyncTenantStore, thread_id: str, answer: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "LG_URL": database_url,
        "LG_TENANT": str(tenant.tenant_id),
        "LG_THREAD": thread_id,
        "LG_ANSWER": answer,
    }
    done = subprocess.run(
        [sys.executable, "-c", "from tests.langgraph_graphs import resume; resume()"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_interrupt_resumed_by_a_new_process_then_time_travel(
    database_url: str, atenant: AsyncTenantStore
) -> None:
    graph = builder().compile(checkpointer=AsyncMnemostoreSaver(atenant))
    thread_id = f"post-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread_id}}

    first = await graph.ainvoke({"request": "launch notes", "log": []}, config)
    assert [i.value for i in first["__interrupt__"]] == [
        {"question": "publish this draft?", "draft": "drafted launch notes"}
    ]
    waiting = await graph.aget_state(config)
    assert waiting.next == ("review",)
    assert waiting.values["log"] == ["drafted launch notes"]

    # Another process, with nothing but the database URL, the tenant and the thread id, answers.
    final = resume_in_new_process(database_url, atenant, thread_id, "yes")
    assert final["log"] == ["drafted launch notes", "reviewed: yes", "published"]
    done = await graph.aget_state(config)
    assert (done.next, done.values["log"], done.values["approved"]) == ((), final["log"], True)

    # Time travel: back to the checkpoint that waited for the human. Replaying it replays the stored answer (its
    # pending writes hold the resume value); a fork from it (update_state) takes a new answer.
    history = [snapshot async for snapshot in graph.aget_state_history(config)]
    assert [s.metadata["step"] for s in history] == sorted((s.metadata["step"] for s in history), reverse=True)
    before_answer = next(s for s in history if s.next == ("review",))
    replayed = await graph.ainvoke(Command(resume="no"), before_answer.config)
    assert replayed["log"] == ["drafted launch notes", "reviewed: yes", "published"]
    fork = await graph.aupdate_state(before_answer.config, None)
    assert fork["configurable"]["checkpoint_id"] > before_answer.config["configurable"]["checkpoint_id"]
    forked = await graph.ainvoke(Command(resume="no"), fork)
    assert forked["log"] == ["drafted launch notes", "reviewed: no", "discarded"]

    latest = await graph.aget_state(config)
    assert (latest.values["log"][-1], latest.values["approved"]) == ("discarded", False)
    # The fork descends from the checkpoint travelled to; the first branch's end is still there to read.
    lineage = []
    cursor = latest.config
    while cursor is not None:
        snapshot = await graph.aget_state(cursor)
        lineage.append(snapshot.config["configurable"]["checkpoint_id"])
        cursor = snapshot.parent_config
    assert before_answer.config["configurable"]["checkpoint_id"] in lineage
    assert done.config["configurable"]["checkpoint_id"] not in lineage
    published = await graph.aget_state(done.config)
    assert published.values["log"][-1] == "published"


async def test_async_saver_sync_methods_from_another_thread(atenant: AsyncTenantStore) -> None:
    saver = AsyncMnemostoreSaver(atenant)
    graph = builder().compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "sync-from-thread"}}
    await graph.ainvoke({"request": "x", "log": []}, config)

    found = await asyncio.to_thread(saver.get_tuple, config)
    assert found is not None and found.checkpoint["channel_values"]["log"] == ["drafted x"]
    assert len(await asyncio.to_thread(lambda: list(saver.list(config)))) == len([t async for t in saver.alist(config)])
    with pytest.raises(ConfigurationError, match="another thread"):
        saver.get_tuple(config)


async def test_from_url_creates_schema_and_tenant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'graph.db'}"
    config = {"configurable": {"thread_id": "t"}}
    for run in range(2):  # the second run finds the schema, the tenant and the thread
        async with AsyncMnemostoreSaver.from_url(url, tenant="agents") as saver:
            graph = builder().compile(checkpointer=saver)
            if run == 0:
                await graph.ainvoke({"request": "x", "log": []}, config)
            assert (await graph.aget_state(config)).next == ("review",)
    async with AsyncMnemoStore(url) as store:
        assert (await store.get_tenant_by_name("agents")) is not None
