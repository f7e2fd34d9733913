"""``mnemostore worker`` (the indexer as its own process) and ``mnemostore reindex`` (re-embed everything).

``worker`` embeds the outbox's jobs of every tenant until SIGINT or SIGTERM, finishing its current batch; run as
many as you like (they claim disjoint batches). ``reindex`` embeds every item lacking a vector of the configured
model, with a progress bar (on a terminal; elsewhere one line per batch); run it after changing the model, after
installing pgvector, or once after upgrading to schema 0003. Ctrl-C or SIGTERM stops it after the current batch,
``--limit N`` after N items (exit status 3: not finished); run again, it goes on where it stopped. A reindex
killed outright leaves its last batch claimed: the next run takes it once ``index_lease_seconds`` have passed.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ._shared import err, open_store, out, settings_from

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.search import IndexingStatus
    from mnemostore.service.store import MnemoStore

__all__ = ["reindex", "worker"]


def worker(
    ctx: typer.Context,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, max=4096, help="Texts per embedding call.")
    ] = None,
) -> None:
    """Embed pending index jobs of every tenant until interrupted (Ctrl-C or SIGTERM)."""
    settings = settings_from(ctx)
    if batch_size is not None:
        settings = settings.model_copy(update={"embedding_batch_size": batch_size})
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        err.print(f"worker: signal {signum}, finishing the current batch")
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    with open_store(settings) as store:
        embedder = store.search_engine.require_embedder()
        out.print(f"worker: embedding with {embedder.name} ({embedder.dimension} dimensions); Ctrl-C stops")
        store.run_indexer(stop)
        status = store.indexing_status()
    out.print(f"worker: stopped; {status.pending} pending, {status.failed} failed")


def reindex(
    ctx: typer.Context,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Items enqueued at once.")] = 1000,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Stop after embedding this many items; run again to go on."),
    ] = None,
) -> None:
    """Embed every message, memory and knowledge chunk lacking a vector of the configured model (resumable).

    With MNEMOSTORE_VECTOR_BACKEND=milvus it then brings Milvus in step with the table: the vectors it lacks are
    written, those of deleted items removed.

    Ctrl-C (or SIGTERM) stops it after the current batch; running it again goes on where it stopped.
    """
    settings = settings_from(ctx)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        err.print(f"reindex: signal {signum}, stopping after the current batch")
        stop.set()

    # In the main thread only (signal's rule); restored after, so an embedding caller keeps its own handlers.
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_store(settings) as store:
            embedder = store.search_engine.require_embedder()
            out.print(f"reindex: embedding with {embedder.name} ({embedder.dimension} dimensions)", markup=False)
            status = _reindex(store, batch_size=batch_size, limit=limit, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if status.pending or status.running:
        out.print(
            f"reindex: stopped with {status.pending + status.running:,} items still to embed; run `mnemostore "
            "reindex` again to go on",
            markup=False,
        )
        raise typer.Exit(3)
    out.print(f"reindex: done; {status.failed} failed" + (" (see `mnemostore health`)" if status.failed else ""))
    if settings.vector_backend == "milvus":
        out.print(f"reindex: Milvus at {settings.milvus_uri} holds the embeddings table's vectors", markup=False)
    if status.failed:
        raise typer.Exit(1)


def _reindex(store: MnemoStore, *, batch_size: int, limit: int | None, stop: threading.Event) -> IndexingStatus:
    """Run the reindex with a progress bar on a terminal, else one ``reindex: N/M`` line per batch (logs)."""
    if not err.is_terminal:

        def report(done: int, total: int) -> None:
            err.print(f"reindex: {done:,}/{total:,} embedded", markup=False)

        return store.reindex(batch_size=batch_size, progress=report, max_jobs=limit, stop=stop)
    columns = (TextColumn("reindex"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("reindex", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return store.reindex(batch_size=batch_size, progress=progress, max_jobs=limit, stop=stop)
