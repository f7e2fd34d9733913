"""The HTTP service: ``create_app(settings | store)`` builds the FastAPI app; ``mnemostore serve`` runs it.

One ``AsyncMnemoStore`` per process, opened in the lifespan (or passed in, for tests and embedding) and shared by
every request; handlers await it and hold no SQL. The layers, from the outside in:

1. ``RequestMiddleware``: request id, body size limit (413), metrics, JSON access log, last-resort 500;
2. the exception handlers of ``errors.py``: the one table from error classes to statuses;
3. the dependencies of ``deps.py``: bearer-key authentication, read-only keys, suspended tenants, rate limits;
4. the routers of ``routes/``, one per capability, which call the store; beside them the documentation pages
   (``/docs``, ``/redoc``) with their assets served by the app itself (``_docs.py``), so they work offline, and
   the MCP endpoint ``/mcp`` (``_mcp.py``: the same tools as ``mnemostore mcp``, on the same API keys).

The app does not migrate: at start it checks the schema and logs what to do when it is behind; until then
``/readyz`` and every /v1 request answer 503. (``mnemostore serve`` initialises an *empty* embedded SQLite
file first, and says so.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI
from starlette.routing import Route

from mnemostore._version import __version__
from mnemostore.config import Settings
from mnemostore.errors import MnemostoreError
from mnemostore.search import Embedder
from mnemostore.service.store_async import AsyncMnemoStore

from ._docs import install_docs
from ._mcp import MCP_METHODS, MCP_PATH, McpEndpoint
from ._middleware import RequestMiddleware
from .deps import admin_digest
from .errors import install_error_handlers
from .metrics import ApiMetrics
from .routes import api_router, ops_router

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("mnemostore.api")

# How often each of several workers copies its cache figures into the shared metrics files (api/metrics.py).
METRICS_REFRESH_SECONDS: Final = 5.0

DESCRIPTION: Final = """
The persistence layer for AI assistants, over HTTP: tenants, users across channels, conversations and messages,
memories, knowledge, and the agent's audit trail and checkpoints.

**Authentication**: `Authorization: Bearer <key>`. A tenant's API key sees only that tenant (another tenant's
ids answer 404, as if they did not exist); a read-only key may only read. The admin key
(`MNEMOSTORE_ADMIN_API_KEY`) manages tenants under `/v1/tenants` and global settings under `/v1/admin`.

**Lists** are pages: pass `next_cursor` back as `cursor`. Message history pages with `before`/`after`.

**Errors** share one body: `code`, `message`, `request_id` (and `fields` for 422; `error`, the mnemostore
exception class, for the store's errors). Rate limits answer 429 with `Retry-After`.

**Search** (`POST /v1/search`): full text everywhere; semantic and hybrid with an embedder (and pgvector on
PostgreSQL), else 503 or 501 saying what is missing.
"""

TAGS: Final = [
    {"name": "tenants (admin)", "description": "The admin key's endpoints."},
    {"name": "api keys", "description": "A tenant's own keys; the secret is shown once, stored hashed."},
    {"name": "users", "description": "Users, and their identities on channels (Discord, Telegram…)."},
    {"name": "conversations", "description": "Conversations of a user."},
    {"name": "messages", "description": "Appending and reading messages; `Idempotency-Key` on appends."},
    {"name": "events", "description": "Server-Sent Events of a conversation."},
    {"name": "memories", "description": "Long-term memory."},
    {"name": "search", "description": "Semantic, full-text and hybrid search over messages, memories, knowledge."},
    {"name": "knowledge", "description": "Knowledge chunks, upserted by source and external id."},
    {"name": "tool executions", "description": "The agent's tool calls."},
    {"name": "checkpoints", "description": "The agent's saved states."},
    {"name": "interaction events", "description": "Human-in-the-loop events."},
    {"name": "agent metrics", "description": "Latency, tokens, cost… recorded by the agent."},
    {"name": "channels", "description": "A channel's config, its users' sessions and presence; rate-limit checks."},
    {"name": "feature flags", "description": "The tenant's and its channels' flags, as a user sees them."},
    {"name": "tenant", "description": "The key's own tenant: its settings, indexing backlog, and data export."},
    {"name": "admin", "description": "The admin key's settings for every tenant (global feature flags)."},
    {"name": "operations", "description": "Probes: no authentication."},
]


def create_app(target: Settings | AsyncMnemoStore | None = None) -> FastAPI:
    """The HTTP service for a store.

    Args:
        target: Settings (the app opens its store at start and closes it at shutdown), or an open
            ``AsyncMnemoStore`` to serve (left open: its owner closes it). Default: ``Settings()`` from the
            environment.

    Returns:
        The FastAPI app; run it with uvicorn (``mnemostore serve``) or test it with ``TestClient`` as a context
        manager (the store is opened in the lifespan).
    """
    given = target if isinstance(target, AsyncMnemoStore) else None
    settings = given.settings if given is not None else (target if isinstance(target, Settings) else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The service starts its indexer itself, or leaves the work to `mnemostore worker` (server_indexer).
        own = settings.model_copy(update={"indexer_autostart": False})
        store = given if given is not None else AsyncMnemoStore(settings=own)
        app.state.store = store
        store.observe_queries(metrics.observe_query)
        try:
            await store.check_schema()
            if given is None and settings.server_indexer and store.embedder is not None:
                # Semantic search sees new items once they are embedded: on the embedded default nobody else
                # would do it. Several workers share the jobs safely (claims under a lock); `mnemostore worker`
                # with server_indexer off moves the work out of the API processes.
                await store.start_indexer()
                log.info("indexing new items for semantic search in this process")
            if given is None and store.embedder is not None and not store.embedder.loaded:
                # Load the model now, in the background: the first semantic query would otherwise pay for it.
                app.state.model_loading = asyncio.create_task(_load_model(store.embedder))
        except MnemostoreError as error:
            log.error("the store is not ready, requests answer 503 until it is: %s", error)
        log.info("serving %s", settings.redacted_url())
        # With several workers each copies its cache figures for the others' scrapes (see api/metrics.py).
        refresher = (
            asyncio.create_task(metrics.refresh_every(METRICS_REFRESH_SECONDS)) if metrics.multiprocess else None
        )
        try:
            async with mcp.running():
                yield
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
            metrics.process_stopped()
            if given is None:
                await store.close()

    app = FastAPI(
        title="mnemostore",
        version=_version(),
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        # FastAPI's pages load their scripts from a CDN: install_docs serves the same pages with local assets.
        docs_url=None,
        redoc_url=None,
    )
    metrics = ApiMetrics(cache_probe=lambda: _cache_health(app))
    app.state.settings = settings
    app.state.metrics = metrics
    admin = settings.admin_api_key
    app.state.admin_digest = admin_digest(admin.get_secret_value() if admin is not None else None)
    install_error_handlers(app)
    install_docs(app, docs_url="/docs", redoc_url="/redoc")
    app.include_router(ops_router)
    app.include_router(api_router)
    mcp = McpEndpoint()
    app.router.routes.append(Route(MCP_PATH, mcp, methods=MCP_METHODS, include_in_schema=False))
    app.add_middleware(RequestMiddleware, max_body=settings.max_request_bytes, metrics=metrics)
    return app


def app_from_env() -> FastAPI:
    """``create_app()`` with the settings of the environment: the factory uvicorn's workers import."""
    return create_app(Settings())


def _cache_health(app: FastAPI) -> dict[str, Any] | None:
    store: AsyncMnemoStore | None = getattr(app.state, "store", None)
    return store.cache_health() if store is not None else None


def _version() -> str:
    return __version__


async def _load_model(embedder: Embedder) -> None:
    """Load the embedding model off the event loop (it logs before and after, with the time it took).

    On a daemon thread, not the loop's executor: the executor's threads are joined when the interpreter exits, so
    a service stopped while the model loads would wait for the load to finish before exiting.
    """
    loop = asyncio.get_running_loop()
    loaded: asyncio.Future[None] = loop.create_future()

    def report(error: BaseException | None) -> None:
        if loaded.done():
            return
        if error is None:
            loaded.set_result(None)
        else:
            loaded.set_exception(error)

    def load() -> None:
        try:
            embedder.load()
        except BaseException as error:  # handed to the awaiting task, which decides
            outcome: BaseException | None = error
        else:
            outcome = None
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(report, outcome)

    threading.Thread(target=load, name="mnemostore-model-load", daemon=True).start()
    try:
        await loaded
    except MnemostoreError as error:  # searches will say the same; the service keeps answering full text
        log.error("the embedding model did not load: %s", error)
