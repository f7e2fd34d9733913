"""``mnemostore reindex`` against a real SQLite file: items embedded with one model are re-embedded with another,
progress is reported, and an interrupted reindex (``--limit``, or Ctrl-C in a real process) resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from mnemostore import MnemoStore, Settings
from mnemostore.cli.main import app
from mnemostore.search import HashingEmbedder
from tests.fix_search import SlowEmbeddingService


def _write_items(url: str) -> set[str]:
    """12 messages, 5 memories and 3 knowledge chunks, embedded with hashing-test-384; returns their ids (hex)."""
    with MnemoStore(url, embedder=HashingEmbedder(384)) as store:
        store.migrate()
        t = store.tenant(store.create_tenant("reindex").id)
        user = t.create_user(display_name="Ada")
        chat = t.create_conversation(user.id)
        messages = t.add_messages(
            chat.id, [{"role": "user", "content": f"message {i} about otters"} for i in range(12)]
        )
        memories = [t.store_memory(f"memory {i}: Ada keeps {i} otters", dedup=False) for i in range(5)]
        chunks = [t.upsert_knowledge("handbook", f"otters#{i}", f"Otter care, chapter {i}") for i in range(3)]
        status = store.wait_for_indexing(timeout_seconds=60)
        assert (status.pending, status.done) == (0, 20)
    return {item.id.hex for item in [*messages, *memories, *chunks]}


def _models(url: str) -> dict[str, tuple[int, int, int]]:
    """Per model: (vectors, distinct items, bytes per vector)."""
    engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT model, count(*), count(DISTINCT item_id), max(length(vector)) FROM embeddings GROUP BY model"
            )
        ).all()
    engine.dispose()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def _items_of(url: str, model: str) -> set[str]:
    engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT item_id FROM embeddings WHERE model = :m"), {"m": model}).scalars().all()
    engine.dispose()
    return {str(i).replace("-", "") for i in ids}


def test_reindex_with_another_model_limit_and_resume(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reindex.db'}"
    items = _write_items(url)
    assert _models(url) == {"hashing-test-384": (20, 20, 384 * 4)}
    runner = CliRunner()
    env = {
        "MNEMOSTORE_EMBEDDER": "hashing",
        "MNEMOSTORE_EMBEDDING_DIMENSION": "64",
        "MNEMOSTORE_EMBEDDING_BATCH_SIZE": "4",
    }

    first = runner.invoke(app, ["--database-url", url, "reindex", "--limit", "8"], env=env)
    assert first.exit_code == 3, first.output
    assert "reindex: embedding with hashing-test-64 (64 dimensions)" in first.stdout
    assert "stopped with 12 items still to embed; run `mnemostore reindex` again" in first.stdout
    assert [line for line in first.stderr.splitlines() if line.startswith("reindex:")] == [
        "reindex: 0/20 embedded",
        "reindex: 4/20 embedded",
        "reindex: 8/20 embedded",
    ]
    # An item has one vector: the new model's replaced the old for 8 items, the other 12 keep the old one.
    assert _models(url) == {"hashing-test-64": (8, 8, 64 * 4), "hashing-test-384": (12, 12, 384 * 4)}

    second = runner.invoke(app, ["--database-url", url, "reindex"], env=env)
    assert second.exit_code == 0, second.output
    assert "reindex: done; 0 failed" in second.stdout
    progress = [line for line in second.stderr.splitlines() if line.startswith("reindex:")]
    assert progress[0] == "reindex: 0/12 embedded" and progress[-1] == "reindex: 12/12 embedded"
    assert _models(url) == {"hashing-test-64": (20, 20, 64 * 4)}
    assert _items_of(url, "hashing-test-64") == items

    again = runner.invoke(app, ["--database-url", url, "reindex"], env=env)  # nothing left: a no-op
    assert again.exit_code == 0 and "reindex: 0/0 embedded" in again.stderr

    with MnemoStore(url, embedder=HashingEmbedder(64)) as store:  # the new vectors are the ones searched
        t = store.tenant(store.get_tenant_by_name("reindex").id)  # type: ignore[union-attr]
        hits = t.semantic_search("Otter care chapter", kinds=["knowledge"], limit=3)
        assert len(hits) == 3 and all(h.content.startswith("Otter care") for h in hits)


def test_ctrl_c_stops_after_the_batch_and_the_next_run_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'interrupted.db'}"
    items = _write_items(url)
    service = SlowEmbeddingService(delay=0.3)
    env = {**os.environ, "MNEMOSTORE_DATABASE_URL": url, "MNEMOSTORE_EMBEDDER": "openai",
           "MNEMOSTORE_EMBEDDING_BASE_URL": service.url, "MNEMOSTORE_EMBEDDING_MODEL": "slow-v2",
           "MNEMOSTORE_EMBEDDING_DIMENSION": "16", "MNEMOSTORE_EMBEDDING_BATCH_SIZE": "2"}  # fmt: skip
    command = [str(Path(sys.executable).with_name("mnemostore")), "reindex"]
    try:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        seen = []
        for line in process.stderr:  # progress, one line per batch of 2
            seen.append(line.strip())
            if line.startswith("reindex: 4/20"):
                process.send_signal(signal.SIGINT)
                break
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 3, (seen, stdout, stderr)
        assert "stopping after the current batch" in stderr
        assert "run `mnemostore reindex` again to go on" in stdout
        done = _models(url).get("slow-v2", (0, 0, 0))[0]
        assert 4 <= done <= 8, done  # the batch under way when the signal came was finished, no more
        engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
        with engine.connect() as conn:  # stopped cleanly: nothing left claimed, the rest waits as pending
            states = dict(conn.execute(sa.text("SELECT state, count(*) FROM index_jobs GROUP BY state")).all())
        engine.dispose()
        assert states.get("running", 0) == 0 and states["pending"] == 20 - done

        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert f"reindex: 0/{20 - done} embedded" in resumed.stderr
        assert f"reindex: {20 - done}/{20 - done} embedded" in resumed.stderr
    finally:
        service.close()
    assert _models(url) == {"slow-v2": (20, 20, 16 * 4)}
    assert _items_of(url, "slow-v2") == items
