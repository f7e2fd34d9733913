"""``mnemostore demo``: a two-second tour of the store on whatever database the global options select.

It writes a small but realistic tenant (users on two channels, two assistant conversations, knowledge, agent
audit records) through the public sync API, then reads it back the way an assistant would and prints a report.
Each run makes a new tenant, so the demo can run again and again on the same database.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from mnemostore.domain import Conversation, KnowledgeChunk, NewMessage, Quotas, Tenant, TenantUsage, User

from . import _demo_data as data
from ._format import human_bytes, human_limit
from ._shared import CliState, ensure_sqlite_folder, open_store, out, settings_from

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.service.store import MnemoStore, TenantStore

__all__ = ["demo"]


@dataclass(slots=True)
class Tour:
    """What the demo wrote, for the report."""

    tenant: Tenant
    users: list[User]
    conversations: list[Conversation]
    chunks: list[KnowledgeChunk]
    chunks_unchanged: bool


def _write(store: MnemoStore) -> Tour:
    tenant = store.create_tenant(
        f"demo-{secrets.token_hex(4)}",
        plan="demo",
        config={"assistant": "Mnemo"},
        quotas=Quotas(max_users=50, max_messages=10_000, max_storage_bytes=50 * 1024**2),
    )
    t = store.tenant(tenant.id)
    t.set_channel_config("discord", default_model="gpt-4o-mini", rate_limits={"messages_per_minute": 20})
    t.set_channel_config("telegram", default_model="claude-3-5-haiku")
    users: dict[str, User] = {}
    for key, channel, channel_user_id, username, display_name, model in data.PEOPLE:
        users[key] = t.get_or_create_user_by_identity(
            channel, channel_user_id, username=username, display_name=display_name, preferred_model=model
        )
    channel, channel_user_id, username = data.ADA_TELEGRAM
    t.link_identity(users["ada"].id, channel, channel_user_id, username=username)

    conversations = [
        _converse(t, users["ada"], "discord", *data.EDINBURGH),
        _converse(t, users["grace"], "telegram", *data.CRON),
    ]
    trip = conversations[0]
    t.record_tool_execution(
        "weather",
        conversation_id=trip.id,
        action="forecast",
        parameters={"city": "Edinburgh", "days": 2},
        result={"saturday": "rain, 11 °C", "sunday": "showers, 12 °C"},
        duration_ms=184.2,
    )
    checkpoint = t.create_checkpoint(
        trip.id,
        iteration=1,
        name="after-forecast",
        state={"goal": "packing list", "constraints": ["hand luggage"], "forecast": "rain"},
        context_summary="Ada visits Edinburgh on Saturday and Sunday; rain expected; hand luggage only.",
    )
    t.record_interaction_event(
        "approval", conversation_id=trip.id, checkpoint_id=checkpoint.id, data={"approved": "packing list"}
    )
    t.record_metric("response_latency_ms", 812.0, conversation_id=trip.id, labels={"model": "gpt-4o-mini"})

    chunks = t.upsert_knowledge_chunks(data.HANDBOOK_SOURCE, data.HANDBOOK)
    before = store.get_tenant_usage(tenant.id)
    again = t.upsert_knowledge_chunks(data.HANDBOOK_SOURCE, data.HANDBOOK)
    after = store.get_tenant_usage(tenant.id)
    unchanged = [c.id for c in again] == [c.id for c in chunks] and before == after
    return Tour(tenant, list(users.values()), conversations, chunks, unchanged)


def _converse(t: TenantStore, user: User, channel: str, title: str, script: list[NewMessage]) -> Conversation:
    conversation = t.create_conversation(user.id, title=title, channel=channel)
    t.add_messages(conversation.id, script)
    return conversation


def _users_table(t: TenantStore, users: list[User]) -> Table:
    table = Table(title="Users and their channel identities", title_justify="left")
    for column in ("user", "identities", "preferred model"):
        table.add_column(column)
    for user in users:
        identities = ", ".join(f"{i.channel}:{i.username or i.channel_user_id}" for i in t.list_identities(user.id))
        table.add_row(Text(user.display_name or str(user.id)), Text(identities), user.preferred_model or "-")
    return table


def _conversations_table(t: TenantStore, conversations: list[Conversation]) -> Table:
    table = Table(title="Conversations", title_justify="left")
    table.add_column("title")
    table.add_column("channel")
    table.add_column("messages", justify="right")
    table.add_column("tokens", justify="right")
    for stale in conversations:
        fresh = t.get_conversation_or_raise(stale.id)
        table.add_row(
            Text(fresh.title or "-"), fresh.channel or "-", str(fresh.message_count), f"{fresh.total_tokens:,}"
        )
    return table


def _history_table(t: TenantStore, conversation: Conversation) -> Table:
    page = t.get_conversation_history(conversation.id, limit=3)
    table = Table(title=Text(f"Last messages of “{conversation.title}”"), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("role")
    table.add_column("model")
    table.add_column("tokens", justify="right")
    table.add_column("content", ratio=1)
    for message in page.messages:
        table.add_row(
            str(message.seq),
            message.role.value,
            message.model or "-",
            str(message.total_tokens),
            Text(message.content, overflow="ellipsis"),
        )
    return table


def _usage_table(tenant: Tenant, usage: TenantUsage) -> Table:
    q = tenant.quotas
    table = Table(title="Tenant usage", title_justify="left")
    table.add_column("resource")
    table.add_column("used", justify="right")
    table.add_column("limit", justify="right")
    table.add_row("users", str(usage.users), human_limit(q.max_users))
    table.add_row("conversations", str(usage.conversations), "-")
    table.add_row("messages", str(usage.messages), human_limit(q.max_messages))
    table.add_row("tokens", f"{usage.tokens:,}", "-")
    table.add_row("storage", human_bytes(usage.storage_bytes), human_limit(q.max_storage_bytes, size=True))
    return table


def _stats_table(t: TenantStore, tour: Tour) -> Table:
    trip = tour.conversations[0]
    stats = t.get_conversation_stats(trip.id)
    by_role = ", ".join(f"{role} {count}" for role, count in sorted(stats.messages_by_role.items()))
    table = Table(title=Text(f"Stats of “{trip.title}” and the tenant"), title_justify="left")
    table.add_column("what")
    table.add_column("value")
    table.add_row("messages by role", by_role)
    table.add_row("prompt / completion tokens", f"{stats.prompt_tokens} / {stats.completion_tokens}")
    table.add_row("tool executions", str(stats.tool_executions))
    table.add_row("checkpoints", str(stats.checkpoints))
    table.add_row("interaction events", str(len(t.list_interaction_events(conversation_id=trip.id).items)))
    table.add_row("metrics", str(len(t.query_metrics(conversation_id=trip.id).items)))
    table.add_row("knowledge chunks", f"{len(tour.chunks)} from '{data.HANDBOOK_SOURCE}'")
    idempotent = "same ids, nothing rewritten" if tour.chunks_unchanged else "[red]changed (unexpected)[/]"
    table.add_row("same chunks upserted again", idempotent)
    return table


def demo(ctx: typer.Context) -> None:
    """Tour mnemostore: write a demo tenant with users, conversations and knowledge, then report on it.

    Migrates the database first if it is behind. Each run creates a new tenant named demo-<id>, so it can be run
    any number of times.
    """
    started = time.perf_counter()
    settings = settings_from(ctx)
    ensure_sqlite_folder(settings)
    with open_store(settings, create=True) as store:
        status = store.get_migration_status()
        if not status.up_to_date:
            store.migrate()
        tour = _write(store)
        t = store.tenant(tour.tenant.id)
        out.print(f"[bold]mnemostore demo[/] on {settings.redacted_url()}", highlight=False)
        if not status.up_to_date:
            out.print(f"Schema migrated from {status.current or 'an empty database'} to {status.head}.")
        out.print(f"Tenant [bold]{tour.tenant.name}[/] ({tour.tenant.id})\n")
        for table in (
            _users_table(t, tour.users),
            _conversations_table(t, tour.conversations),
            _history_table(t, tour.conversations[0]),
            _usage_table(tour.tenant, store.get_tenant_usage(tour.tenant.id)),
            _stats_table(t, tour),
        ):
            out.print(table)
    state = ctx.find_object(CliState)
    where = f"--database-url '{settings.redacted_url()}' " if state is not None and state.database_url else ""
    out.print(
        f"\nDone in {time.perf_counter() - started:.2f} s. Next: `mnemostore {where}tenant usage {tour.tenant.name}`",
        markup=False,
    )
