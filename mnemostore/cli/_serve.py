"""``mnemostore serve``: run the HTTP service (FastAPI on uvicorn) on the database the global options select.

Before it starts it looks at the schema, once, in this process (not in each worker):

* a new embedded SQLite file (missing or empty) is initialised to the newest schema, and the command says so:
  that is what ``mnemostore init`` would do, and nothing is there to lose;
* any other database must already be at head: one that is behind (or not initialised) is never migrated here.
  The command stops and names the command to run (``mnemostore db upgrade`` / ``mnemostore init``), because
  migrating a production database is a deliberate step.

More than one worker needs Redis (``MNEMOSTORE_REDIS_URL``): the in-process cache, rate limits and event bus
belong to one process, so several workers without Redis would each see their own. Their Prometheus figures meet in
a folder (``PROMETHEUS_MULTIPROC_DIR``, or a temporary one made and removed here), so ``/metrics`` adds them up.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from mnemostore.errors import SchemaOutOfDate

from ._shared import CliState, ensure_sqlite_folder, fail, open_store, out, settings_from, sqlite_file

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.config import Settings

__all__ = ["prepare_database", "serve"]


def _new_sqlite_file(settings: Settings) -> bool:
    path = sqlite_file(settings)
    return path is not None and (not path.exists() or path.stat().st_size == 0)


def _check_port_free(host: str, port: int) -> None:
    """Refuse, in one line naming --port, a port another process holds (uvicorn would log it and exit 3)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                fail(
                    f"port {port} on {host} is taken by another program (another `mnemostore serve`?): stop it, "
                    "or choose a free port with --port (or MNEMOSTORE_SERVER_PORT)"
                )
            fail(f"cannot listen on {host}:{port} ({error.strerror}): check --host and --port")


def prepare_database(settings: Settings, *, console: Console = out) -> None:
    """Initialise a new embedded SQLite file; refuse (with the command to run) a database that is not at head.

    ``console`` says what was done (stdout by default; ``mnemostore mcp`` passes stderr: its stdout is the protocol).
    """
    if _new_sqlite_file(settings):
        ensure_sqlite_folder(settings)
        with open_store(settings, create=True) as store:
            store.migrate()
            revision = store.get_migration_status().current
        console.print(
            f"Initialised the new database {settings.redacted_url()} to schema {revision} (as `mnemostore init`)",
            markup=False,
        )
        return
    with open_store(settings) as store:
        status = store.get_migration_status()
    if status.current is None:
        fail(
            f"{settings.redacted_url()} has no mnemostore schema: run `mnemostore init` to create it "
            "(serve only initialises a new embedded SQLite file by itself)"
        )
    if not status.up_to_date:
        fail(str(SchemaOutOfDate(status.current, status.head)))


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option("--host", show_default=False, help="Address to bind. Default: MNEMOSTORE_SERVER_HOST, 127.0.0.1."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, show_default=False, help="Default: MNEMOSTORE_SERVER_PORT, 8000."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=256,
            show_default=False,
            help="Worker processes. Default: MNEMOSTORE_SERVER_WORKERS, 1. More than 1 needs MNEMOSTORE_REDIS_URL.",
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error (JSON lines on stderr).")
    ] = "info",
) -> None:
    """Run the HTTP service: the REST API under /v1, docs at /docs, /healthz, /readyz and /metrics.

    On the embedded default (an SQLite file) it needs no other server; a new file is initialised first.

    Authenticate with a tenant API key (`mnemostore tenant create-key`); /v1/tenants takes MNEMOSTORE_ADMIN_API_KEY.
    """
    import uvicorn

    from mnemostore.api import logging_config

    settings = settings_from(ctx)
    host = host if host is not None else settings.server_host
    port = port if port is not None else settings.server_port
    workers = workers if workers is not None else settings.server_workers
    if log_level.lower() not in {"debug", "info", "warning", "error"}:
        fail(f"--log-level {log_level!r} is not one of debug, info, warning, error")
    if workers > 1 and settings.redis_url is None:
        fail(
            f"--workers {workers} needs Redis: set MNEMOSTORE_REDIS_URL. Without it each worker keeps its own cache, "
            "rate limits and event bus, so they would disagree; run one worker, or several behind Redis"
        )
    _check_port_free(host, port)
    prepare_database(settings)
    state = ctx.find_object(CliState) or CliState()
    if state.database_url:
        # The workers build their settings from the environment (mnemostore.api.app:app_from_env).
        os.environ["MNEMOSTORE_DATABASE_URL"] = state.database_url
    if settings.admin_api_key is None:
        out.print(
            "No admin key (MNEMOSTORE_ADMIN_API_KEY): /v1/tenants answers 403. Make tenants and keys with "
            "`mnemostore tenant create NAME` and `mnemostore tenant create-key NAME KEY-NAME`.",
            markup=False,
        )
    shown = f"[{host}]" if ":" in host else host
    out.print(f"Serving {settings.redacted_url()} on http://{shown}:{port} (docs: /docs)", markup=False)
    with _metrics_folder(workers):
        uvicorn.run(
            "mnemostore.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=logging_config(log_level),
            access_log=False,
            proxy_headers=True,
            timeout_graceful_shutdown=5,
        )


@contextmanager
def _metrics_folder(workers: int) -> Iterator[None]:
    """Where several workers keep their Prometheus figures, so that /metrics adds them up (see api/metrics.py).

    ``PROMETHEUS_MULTIPROC_DIR`` when set (even for one worker: prometheus-client then writes there anyway): its
    ``*.db`` files of an earlier run are removed first, as prometheus-client requires. Otherwise, with more than
    one worker, a new temporary folder, removed when the service stops. The workers inherit the variable.
    """
    from mnemostore.api.metrics import MULTIPROC_ENV

    given = os.environ.get(MULTIPROC_ENV, "").strip()
    if given:
        folder = Path(given)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("*.db"):
                stale.unlink()
        except OSError as error:
            fail(f"{MULTIPROC_ENV}={given} cannot be used for the metrics of the workers ({error}): fix or unset it")
        yield
        return
    if workers == 1:
        yield
        return
    made = tempfile.mkdtemp(prefix="mnemostore-metrics-")
    os.environ[MULTIPROC_ENV] = made
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)
