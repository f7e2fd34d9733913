"""``mnemostore maintenance`` on SQLite and PostgreSQL (CliRunner, in-process)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from mnemostore import ConversationStatus, MnemoStore
from mnemostore.cli.main import app


def test_maintenance_command(database_url: str) -> None:
    with MnemoStore(database_url) as store:
        name = f"tenant-{uuid.uuid4().hex[:12]}"
        tenant = store.create_tenant(name, config={"retention": {"archive_after_days": 7}})
        t = store.tenant(tenant.id)
        uid = t.create_user(display_name="Ada").id
        conv = t.create_conversation(uid)
        with t._tx(write=True) as uow:
            uow.conversations.update(conv.id, {"last_activity_at": datetime.now(UTC) - timedelta(days=8)})
        t.store_memory("stale", expires_at=datetime.now(UTC) - timedelta(minutes=1))

        runner = CliRunner()
        dry = runner.invoke(app, ["--database-url", database_url, "maintenance", "--tenant", name, "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "1 expired memories would be purged, 1 conversations would be archived" in dry.stdout
        assert t.get_conversation_or_raise(conv.id).status == ConversationStatus.ACTIVE

        done = runner.invoke(app, ["--database-url", database_url, "maintenance", "--tenant", str(tenant.id)])
        assert done.exit_code == 0, done.output
        assert "1 expired memories were purged, 1 conversations were archived" in done.stdout
        assert t.get_conversation_or_raise(conv.id).status == ConversationStatus.ARCHIVED

        bad = runner.invoke(app, ["--database-url", database_url, "maintenance", "--tenant", "no-such-tenant"])
        assert bad.exit_code == 1
        assert bad.stderr.startswith("error: ")
