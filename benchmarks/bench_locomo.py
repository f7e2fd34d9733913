#!/usr/bin/env python
"""Retrieval quality on LoCoMo: very long two-person chats, questions answered by a few of their turns.

LoCoMo (Maharana et al., "Evaluating Very Long-Term Conversational Memory of LLM Agents", ACL 2024; CC BY-NC 4.0)
is read from ``../shared/data/locomo-dev/`` beside the repository (its development half; see its README), never
copied here. Every dialog turn is stored through the public API as one message of its conversation: the speaker
as its author (``metadata.author``), the session's date as its time (``created_at``), a shared photo as its
caption in brackets. Each question of categories 1-4 (multi-hop, temporal, open-domain, single-hop; 5, the
adversarial ones, have no evidence to find) is asked with ``TenantStore.search`` scoped to its conversation, in
each mode.

Printed per mode: evidence recall@1/5/10/25 (per question: the share of its evidence turns among the first k hits,
k counting turns; then the mean over questions), overall and per category, and the latency of a query (p50, p95).
Exit status 0 whatever the figures.

Usage::

    .venv/bin/python benchmarks/bench_locomo.py                       # SQLite in a temporary folder, ~3 minutes
    .venv/bin/python benchmarks/bench_locomo.py --pgserver            # throw-away PostgreSQL 18 + pgvector
    .venv/bin/python benchmarks/bench_locomo.py --modes fulltext --conversations 2 --json locomo.json
    .venv/bin/python benchmarks/bench_locomo.py --author-in-content   # "Name: text" as the stored content
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_retrieval import _pgserver

from mnemostore import MnemoStore, NewMessage, Settings
from mnemostore.ops import migrate
from mnemostore.search import query_terms

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev" / "locomo-dev.json"
KS = (1, 5, 10, 25)
MODES = ("fulltext", "semantic", "hybrid")
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
_SESSION = re.compile(r"^session_(\d+)$")


@dataclass(slots=True)
class Turn:
    ref: str
    author: str
    text: str
    said_at: datetime


@dataclass(slots=True)
class Question:
    text: str
    category: int
    evidence: set[str]


@dataclass(slots=True)
class Chat:
    name: str
    turns: list[Turn] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)


def session_time(text: str) -> datetime:
    """A session's date as the release writes it ("1:56 pm on 8 May, 2023"), read as UTC."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def load(path: Path, limit: int | None) -> tuple[list[Chat], dict[str, int]]:
    """The chats and their answerable questions, and counts of what was left out (evidence naming no turn)."""
    skipped = {"unknown_evidence_refs": 0, "questions_without_evidence": 0}
    chats: list[Chat] = []
    for item in json.loads(path.read_text())[:limit]:
        conversation = item["conversation"]
        chat = Chat(item.get("sample_id", f"chat-{len(chats)}"))
        sessions = sorted(int(m.group(1)) for key in conversation if (m := _SESSION.match(key)))
        for number in sessions:
            said_at = session_time(conversation[f"session_{number}_date_time"])
            for turn in conversation[f"session_{number}"]:
                text = turn["text"]
                if turn.get("blip_caption"):
                    text = f"{text} [shares a photo: {turn['blip_caption']}]"
                chat.turns.append(Turn(turn["dia_id"], turn["speaker"], text, said_at))
        refs = {turn.ref for turn in chat.turns}
        for qa in item["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            evidence = {ref.strip() for ref in qa.get("evidence", [])}
            skipped["unknown_evidence_refs"] += len(evidence - refs)
            evidence &= refs
            if not evidence:
                skipped["questions_without_evidence"] += 1
                continue
            chat.questions.append(Question(qa["question"], qa["category"], evidence))
        chats.append(chat)
    return chats, skipped


def run(args: argparse.Namespace) -> dict[str, Any]:
    chats, skipped = load(args.data, args.conversations)
    if args.pick:
        chats = [chats[i] for i in args.pick if i < len(chats)]
    tmp = tempfile.TemporaryDirectory()
    server: Any = None
    try:
        if args.pgserver:
            server, url = _pgserver(Path(tmp.name))
        else:
            url = args.database_url or f"sqlite:///{Path(tmp.name) / 'locomo.db'}"
        return {**measure(args, chats, url), "left_out": skipped}
    finally:
        if server is not None:
            server.cleanup()
        tmp.cleanup()


def measure(args: argparse.Namespace, chats: list[Chat], url: str) -> dict[str, Any]:
    settings = Settings(database_url=url, embedder="sentence-transformers")
    migrate.upgrade(settings)
    modes = args.modes
    recalls: dict[str, dict[str, list[list[float]]]] = {m: defaultdict(list) for m in modes}
    latencies: dict[str, list[float]] = {m: [] for m in modes}
    started = time.perf_counter()
    with MnemoStore(settings=settings) as store:
        tenant = store.tenant(store.create_tenant(f"locomo-{uuid.uuid4().hex[:8]}").id)
        stored: list[tuple[uuid.UUID, dict[uuid.UUID, str]]] = []
        for chat in chats:
            user = tenant.create_user(display_name=chat.name)
            conversation = tenant.create_conversation(user.id, title=chat.name)
            messages = [
                NewMessage(
                    role="user",
                    content=f"{turn.author}: {turn.text}" if args.author_in_content else turn.text,
                    metadata={"author": turn.author},
                    created_at=turn.said_at,
                )
                for turn in chat.turns
            ]
            ids: dict[uuid.UUID, str] = {}
            for first in range(0, len(messages), 500):
                added = tenant.add_messages(conversation.id, messages[first : first + 500])
                ids.update((m.id, turn.ref) for m, turn in zip(added, chat.turns[first : first + 500], strict=True))
            stored.append((conversation.id, ids))
        store.wait_for_indexing(timeout_seconds=1800)
        loaded = time.perf_counter() - started
        dump: list[dict[str, Any]] = []
        for chat, (conversation_id, ids) in zip(chats, stored, strict=True):
            for question in chat.questions:
                if args.dump:
                    dump.append(lists(tenant, conversation_id, ids, chat, question))
                for mode in modes:
                    begun = time.perf_counter()
                    hits = tenant.search(
                        question.text, mode=mode, kinds=("messages",), conversation_id=conversation_id, limit=max(KS)
                    )
                    latencies[mode].append(time.perf_counter() - begun)
                    refs = [ids.get(hit.id) for hit in hits]
                    row = [len(question.evidence & set(refs[:k])) / len(question.evidence) for k in KS]
                    recalls[mode]["all"].append(row)
                    recalls[mode][CATEGORIES[question.category]].append(row)
    if args.dump:
        args.dump.write_text(json.dumps(dump))
    return {
        "dataset": {
            "file": str(args.data),
            "conversations": len(chats),
            "turns": sum(len(c.turns) for c in chats),
            "questions": sum(len(c.questions) for c in chats),
        },
        "backend": "postgresql" if url.startswith("postgres") else "sqlite",
        "author_in_content": args.author_in_content,
        "load_and_index_seconds": round(loaded, 1),
        "recall": {
            mode: {
                group: {f"R@{k}": round(100 * statistics.fmean(r[i] for r in rows), 1) for i, k in enumerate(KS)}
                | {"questions": len(rows)}
                for group, rows in groups.items()
            }
            for mode, groups in recalls.items()
        },
        "latency_ms": {
            mode: {
                "p50": round(1000 * statistics.median(values), 2),
                "p95": round(1000 * statistics.quantiles(values, n=20)[-1], 2),
            }
            for mode, values in latencies.items()
            if len(values) > 1
        },
    }


def lists(
    tenant: Any, conversation_id: uuid.UUID, ids: dict[uuid.UUID, str], chat: Chat, question: Question
) -> dict[str, Any]:
    """One question with each retriever's own ranking (50 deep, with scores), to study fusions offline."""
    row: dict[str, Any] = {
        "chat": chat.name,
        "category": question.category,
        "evidence": sorted(question.evidence),
        "terms": len(query_terms(question.text)),
    }
    for mode in ("fulltext", "semantic"):
        hits = tenant.search(question.text, mode=mode, kinds=("messages",), conversation_id=conversation_id, limit=50)
        row[mode] = [[ids.get(hit.id), hit.scores.get(mode, 0.0)] for hit in hits]
    return row


def report(result: dict[str, Any]) -> str:
    data = result["dataset"]
    lines = [
        f"LoCoMo ({data['conversations']} conversations, {data['turns']} turns, {data['questions']} questions of "
        f"categories 1-4) on {result['backend']}; loaded and indexed in {result['load_and_index_seconds']} s;"
        f" author in content: {result['author_in_content']}",
        f"{'mode':9s} {'group':12s} {'n':>4s} " + " ".join(f"{'R@' + str(k):>6s}" for k in KS) + "  p50 ms  p95 ms",
    ]
    for mode, groups in result["recall"].items():
        latency = result["latency_ms"].get(mode, {})
        for group in ("all", *CATEGORIES.values()):
            if group not in groups:
                continue
            row = groups[group]
            tail = f"  {latency.get('p50', 0):6.1f}  {latency.get('p95', 0):6.1f}" if group == "all" else ""
            recall = " ".join(f"{row[f'R@{k}']:6.1f}" for k in KS)
            lines.append(f"{mode:9s} {group:12s} {row['questions']:4d} {recall}{tail}")
    left_out = result["left_out"]
    lines.append(
        f"left out: {left_out['unknown_evidence_refs']} evidence refs naming no turn, "
        f"{left_out['questions_without_evidence']} questions with no evidence left"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON (default: ../shared's dev half)")
    parser.add_argument("--conversations", type=int, help="only the first N conversations")
    parser.add_argument("--pick", type=int, nargs="+", help="only these conversations (0-based indexes in the file)")
    parser.add_argument("--dump", type=Path, help="write each question's fulltext and semantic lists here (JSON)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--author-in-content", action="store_true", help='store "Name: text" instead of the text')
    parser.add_argument("--database-url", help="a database to use instead of a temporary SQLite file")
    parser.add_argument("--pgserver", action="store_true", help="a throw-away PostgreSQL 18 + pgvector")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"no LoCoMo file at {args.data}: pass --data (see ../shared/data/locomo-dev/README.md)")
    result = run(args)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
