"""``mnemostore rotate-keys``: re-encrypt sensitive fields with the current key, so older keys can go.

Rotation in three steps: put the new key first in MNEMOSTORE_ENCRYPTION_KEYS (new writes use it at once, old
rows stay readable with the keys behind it), run this command, then remove the old keys.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ._shared import open_store, out, settings_from

__all__ = ["rotate_keys"]


def rotate_keys(
    ctx: typer.Context,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="Rows per transaction.")] = 500,
) -> None:
    """Re-encrypt every email, secret message metadata value and tool parameter set that is not under the
    current key (the first of MNEMOSTORE_ENCRYPTION_KEYS), including values stored in clear before encryption
    was turned on. Safe to interrupt and run again.
    """
    settings = settings_from(ctx)
    with open_store(settings) as store:
        report = store.rotate_keys(batch_size=batch_size)
    table = Table(title=f"Key rotation to {report.key_id!r}", title_justify="left")
    table.add_column("table", no_wrap=True)
    table.add_column("rows read", justify="right")
    table.add_column("re-encrypted", justify="right")
    for name, scanned in report.scanned.items():
        table.add_row(name, f"{scanned:,}", f"{report.rewritten[name]:,}")
    out.print(table)
    out.print(
        f"Every sensitive value is now under key {report.key_id!r}: the other keys can be removed from "
        "MNEMOSTORE_ENCRYPTION_KEYS.",
        markup=False,
    )
