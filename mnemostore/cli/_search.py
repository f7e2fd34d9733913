"""``mnemostore worker`` (the indexer as its own process) and ``mnemostore reindex`` (re-embed everything).

``worker`` embeds the outbox's jobs of every tenant until SIGINT or SIGTERM, finishing its current batch; run as
many as you like (they claim disjoint batches). ``reindex`` embeds every item lacking a vector of the configured
model, with a progress bar; run it after changing the model, after installing pgvector, or once after upgrading
to schema 0003. It resumes where it stopped.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ._shared import err, open_store, out, settings_from

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
) -> None:
    """Embed every message, memory and knowledge chunk lacking a vector of the configured model (resumable)."""
    settings = settings_from(ctx)
    with (
        open_store(settings) as store,
        Progress(TextColumn("reindex"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err) as bar,
    ):
        task = bar.add_task("reindex", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        status = store.reindex(batch_size=batch_size, progress=progress)
    out.print(f"reindex: done; {status.failed} failed" + (" (see `mnemostore health`)" if status.failed else ""))
    if status.failed:
        raise typer.Exit(1)
