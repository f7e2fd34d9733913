"""``mnemostore mcp``: serve the memory, conversation and knowledge tools to an MCP client over stdio.

The client (Claude Desktop, an IDE, an agent framework) starts this command and speaks the Model Context Protocol
on its stdin and stdout, so nothing else is printed there: messages go to stderr. One process serves one tenant,
on the database of the global options, as ``Memory(tenant=...)`` would: a new embedded SQLite file is
initialised first (as ``serve`` does), and a tenant given by name is created when it does not exist yet (by id
it must exist). Over HTTP, ``mnemostore serve`` answers the same tools at ``/mcp`` with the tenants' API keys.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from mnemostore.errors import TenantAlreadyExists, TenantNotFound

from ._serve import prepare_database
from ._shared import err, open_store, settings_from

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.config import Settings
    from mnemostore.service.store import MnemoStore

__all__ = ["mcp_command"]


def _tenant_id(store: MnemoStore, ref: str) -> uuid.UUID:
    """The id of the tenant ``ref`` (an id, else a name); a name not taken yet becomes a new tenant."""
    try:
        by_id: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        by_id = None
    if by_id is not None:
        tenant = store.get_tenant(by_id)
        if tenant is None:
            raise TenantNotFound(ref, ": give a tenant id or name from `mnemostore tenant list`")
        return tenant.id
    tenant = store.get_tenant_by_name(ref)
    if tenant is None:
        try:
            tenant = store.create_tenant(ref)
            err.print(f"Created the tenant {ref!r}", markup=False)
        except TenantAlreadyExists:  # created meanwhile by another process
            tenant = store.get_tenant_by_name(ref)
            assert tenant is not None
    return tenant.id


async def _serve(settings: Settings, tenant_id: uuid.UUID, read_only: bool) -> None:
    from mnemostore.integrations.mcp import serve_stdio
    from mnemostore.service.store_async import AsyncMnemoStore

    store = AsyncMnemoStore(settings=settings)
    try:
        await serve_stdio(store.tenant(tenant_id), read_only=read_only)
    finally:
        await store.close()


def mcp_command(
    ctx: typer.Context,
    tenant: Annotated[
        str,
        typer.Option(
            "--tenant",
            metavar="NAME|ID",
            help="The tenant whose memory the tools use: a name (created when missing) or an id.",
        ),
    ] = "default",
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Offer the read tools only: every write tool answers an error.")
    ] = False,
) -> None:
    """Serve mnemostore's tools to an MCP client over stdio: memories, conversations, knowledge search.

    Register it in the client's configuration as the command `mnemostore mcp --tenant NAME` (with
    `--database-url` or MNEMOSTORE_DATABASE_URL for a database other than ./mnemostore.db). Over HTTP,
    `mnemostore serve` answers the same tools at /mcp, authenticated with the tenants' API keys.
    """
    import mnemostore.integrations.mcp  # noqa: F401  (without the SDK: one line naming the extra, before any work)

    settings = settings_from(ctx)
    prepare_database(settings, console=err)
    with open_store(settings) as store:
        tenant_id = _tenant_id(store, tenant)
    err.print(f"Serving MCP over stdio: tenant {tenant} on {settings.redacted_url()}", markup=False)
    asyncio.run(_serve(settings, tenant_id, read_only))
