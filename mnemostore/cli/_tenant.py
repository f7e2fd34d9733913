"""``mnemostore tenant …``: create tenants, list them, read their usage, change quotas, issue API keys.

A TENANT argument is a tenant id or a tenant name.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from mnemostore.domain import Quotas, Tenant

from ._format import human_bytes, human_limit, parse_limit
from ._shared import err, fail, open_store, out, resolve_tenant, settings_from

__all__ = ["app"]

app = typer.Typer(
    name="tenant",
    help="Manage tenants: the isolated spaces that own users, conversations and knowledge.",
    no_args_is_help=True,
)

TenantArg = Annotated[str, typer.Argument(metavar="TENANT", help="Tenant id or name.")]
MaxUsers = Annotated[
    str | None, typer.Option("--max-users", metavar="N", help="Most users the tenant may have, or 'unlimited'.")
]
MaxMessages = Annotated[
    str | None,
    typer.Option("--max-messages", metavar="N", help="Most messages the tenant may store, or 'unlimited'."),
]
MaxStorage = Annotated[
    str | None,
    typer.Option(
        "--max-storage-bytes",
        metavar="SIZE",
        help="Most bytes of message and knowledge text (e.g. 500000000, 500MB, 2GiB), or 'unlimited'.",
    ),
]


def _quotas(quotas: Quotas, *, max_users: str | None, max_messages: str | None, max_storage: str | None) -> Quotas:
    """``quotas`` with the limits that were given on the command line replaced."""
    return Quotas(
        max_users=parse_limit(max_users, "--max-users") if max_users is not None else quotas.max_users,
        max_messages=parse_limit(max_messages, "--max-messages") if max_messages is not None else quotas.max_messages,
        max_storage_bytes=(
            parse_limit(max_storage, "--max-storage-bytes", sizes=True)
            if max_storage is not None
            else quotas.max_storage_bytes
        ),
    )


def _quota_summary(quotas: Quotas) -> str:
    return (
        f"users {human_limit(quotas.max_users)}, messages {human_limit(quotas.max_messages)}, "
        f"storage {human_limit(quotas.max_storage_bytes, size=True)}"
    )


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique tenant name, e.g. the customer's slug.")],
    plan: Annotated[str, typer.Option(help="Plan label, stored with the tenant.")] = "free",
    max_users: MaxUsers = None,
    max_messages: MaxMessages = None,
    max_storage_bytes: MaxStorage = None,
) -> None:
    """Create a tenant and print its id on stdout (limits not given are unlimited)."""
    quotas = _quotas(Quotas(), max_users=max_users, max_messages=max_messages, max_storage=max_storage_bytes)
    with open_store(settings_from(ctx)) as store:
        tenant = store.create_tenant(name, plan=plan, quotas=quotas)
    err.print(f"Created tenant {tenant.name!r} on plan {tenant.plan!r} ({_quota_summary(tenant.quotas)})", markup=False)
    out.print(str(tenant.id))


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List every tenant, oldest first, with its plan, status and quotas."""
    with open_store(settings_from(ctx)) as store:
        tenants: list[Tenant] = []
        cursor: str | None = None
        while True:
            page = store.list_tenants(limit=500, cursor=cursor)
            tenants.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    if not tenants:
        out.print("No tenants yet: create one with `mnemostore tenant create NAME`.", markup=False)
        return
    table = Table(title=f"{len(tenants)} tenant(s)", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("name", overflow="fold")
    table.add_column("plan", overflow="fold")
    table.add_column("limits: users / messages / storage", overflow="fold")
    for tenant in tenants:
        q = tenant.quotas
        name = Text(tenant.name)
        if tenant.status.value != "active":
            name.append(f" ({tenant.status.value})", style="yellow")
        limits = " / ".join(
            (human_limit(q.max_users), human_limit(q.max_messages), human_limit(q.max_storage_bytes, size=True))
        )
        table.add_row(str(tenant.id), name, Text(tenant.plan), limits)
    out.print(table)


@app.command()
def usage(ctx: typer.Context, tenant: TenantArg) -> None:
    """Show what a tenant holds (users, conversations, messages, tokens, stored bytes) against its quotas."""
    with open_store(settings_from(ctx)) as store:
        found = resolve_tenant(store, tenant)
        used = store.get_tenant_usage(found.id)
    q = found.quotas
    out.print(Text(f"Tenant {found.name} ({found.id}), plan {found.plan}, {found.status.value}"))
    table = Table()
    table.add_column("resource")
    table.add_column("used", justify="right")
    table.add_column("limit", justify="right")
    table.add_row("users", f"{used.users:,}", human_limit(q.max_users))
    table.add_row("conversations", f"{used.conversations:,}", "-")
    table.add_row("messages", f"{used.messages:,}", human_limit(q.max_messages))
    table.add_row("tokens", f"{used.tokens:,}", "-")
    table.add_row("storage", human_bytes(used.storage_bytes), human_limit(q.max_storage_bytes, size=True))
    out.print(table)


@app.command("set-quota")
def set_quota(
    ctx: typer.Context,
    tenant: TenantArg,
    max_users: MaxUsers = None,
    max_messages: MaxMessages = None,
    max_storage_bytes: MaxStorage = None,
) -> None:
    """Change a tenant's limits; those not given stay as they are. 'unlimited' removes a limit.

    Lowering a limit below current usage deletes nothing: further writes of that kind are refused.
    """
    if max_users is None and max_messages is None and max_storage_bytes is None:
        fail("nothing to change: pass --max-users, --max-messages and/or --max-storage-bytes")
    with open_store(settings_from(ctx)) as store:
        found = resolve_tenant(store, tenant)
        quotas = _quotas(found.quotas, max_users=max_users, max_messages=max_messages, max_storage=max_storage_bytes)
        updated = store.update_tenant_config(found.id, quotas=quotas)
    out.print(f"Quotas of {updated.name!r}: {_quota_summary(updated.quotas)}", markup=False)


@app.command("create-key")
def create_key(
    ctx: typer.Context,
    tenant: TenantArg,
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. 'discord-bot'.")],
    read_only: Annotated[bool, typer.Option("--read-only", help="The key may read but not write.")] = False,
) -> None:
    """Create an API key for a tenant and print its secret on stdout. The secret is shown only this once."""
    with open_store(settings_from(ctx)) as store:
        found = resolve_tenant(store, tenant)
        key, secret = store.tenant(found.id).create_api_key(name, read_only=read_only)
    access = "read-only" if key.read_only else "read-write"
    err.print(f"Created {access} API key {key.name!r} ({key.id}) for tenant {found.name!r}.", markup=False)
    err.print("Store this secret now: it cannot be shown again (mnemostore keeps only its hash).", style="bold yellow")
    out.print(secret, markup=False)
