"""A writer process for tests/test_faults.py: appends with idempotency keys until killed, then resumes as a client.

Run as ``python -m tests.fault_writer DATABASE_URL REDIS_URL PREFIX TENANT_ID LOG TOTAL CONV_ID...``. Every step is
logged to LOG, fsync'd, before the next one: ``S <key>`` before an append is sent, ``A <key> <seq>`` once it is
acknowledged, ``R <key> ok|stale`` for the history read (through the Redis-cached store) that follows each
acknowledgement, and on each start ``C <conversation> ok|stale`` for a read of every conversation, whose newest
acknowledged message must be in it. A restarted writer first sends again its last key that was sent and not
acknowledged (a client's retry, logged ``P <key>``), then goes on with new keys. It stops once TOTAL keys are
acknowledged.

With ``MNEMOSTORE_FAULTS_CRASH_AFTER_COMMIT=N`` the writer kills itself (SIGKILL) on its N-th append, after the
commit and before the write-through to Redis: the crash the idempotent retry has to repair.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from mnemostore import MnemoStore

HISTORY_LIMIT = 20


def content_of(key: str) -> str:
    """The message a key stands for: a retry sends exactly the same message."""
    return f"fault message {key}"


def parse_log(path: Path) -> tuple[list[str], dict[str, int], str | None]:
    """(keys in the order sent, acknowledged key -> seq, the last key sent and not acknowledged)."""
    sent: list[str] = []
    acked: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue  # a line cut by the kill
            if parts[0] == "S":
                sent.append(parts[1])
            elif parts[0] == "A" and len(parts) == 3:
                acked[parts[1]] = int(parts[2])
    pending = next((key for key in reversed(sent) if key not in acked), None)
    if pending is not None and sent and sent[-1] != pending:
        pending = None  # only the very last key sent can be in flight: the writer waits for each answer
    return sent, acked, pending


class Log:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())
        os.fsync(self.fd)


def main(argv: list[str]) -> None:
    database_url, redis_url, prefix, tenant_id, log_path, total, *conversations = argv
    path = Path(log_path)
    sent, acked, pending = parse_log(path)
    log = Log(path)
    crash_at = int(os.environ.get("MNEMOSTORE_FAULTS_CRASH_AFTER_COMMIT", "0"))
    store = MnemoStore(database_url, redis_url=redis_url, cache_key_prefix=prefix, redis_timeout_ms=2000)
    tenant = store.tenant(tenant_id)
    if crash_at:
        cache: Any = tenant._cache
        real = cache.messages_added
        calls = [0]

        def crash_before_write_through(*args: Any, **kwargs: Any) -> None:
            calls[0] += 1
            if calls[0] == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
            real(*args, **kwargs)

        cache.messages_added = crash_before_write_through

    # What a restarted client reads first: every conversation's newest acknowledged message must be there.
    newest: dict[str, int] = {}
    for key, seq in acked.items():
        conversation = conversations[int(key.split("-")[0])]
        newest[conversation] = max(newest.get(conversation, 0), seq)
    for conversation, seq in newest.items():
        page = tenant.get_conversation_history(conversation, limit=HISTORY_LIMIT)
        log.write(f"C {conversation} {'ok' if any(m.seq == seq for m in page.messages) else 'stale'}")

    counter = len(sent)  # each key is logged as sent once: the pending one is among them
    while len(acked) < int(total):
        if pending is not None:
            key, pending = pending, None  # the retry of what the killed writer had sent
            log.write(f"P {key}")
        else:
            key = f"{counter % len(conversations)}-{counter}"
            counter += 1
            log.write(f"S {key}")
        conversation = conversations[int(key.split("-")[0])]
        message = tenant.add_message(conversation, role="user", content=content_of(key), idempotency_key=key)
        acked[key] = message.seq
        log.write(f"A {key} {message.seq}")
        page = tenant.get_conversation_history(conversation, limit=HISTORY_LIMIT)
        log.write(f"R {key} {'ok' if any(m.seq == message.seq for m in page.messages) else 'stale'}")
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
