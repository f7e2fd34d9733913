"""``mnemostore backup | restore | export | erase``: archives of the database, and erasing a user.

An archive is a folder, or one ``.tar`` / ``.tar.gz`` file, that either backend restores: back up an embedded
SQLite store and restore it into PostgreSQL to promote it to production, or the other way round. A progress bar
runs on stderr when it is a terminal. A TENANT is a tenant id or name; a USER is a user id, email or external id.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from mnemostore.domain import User
from mnemostore.errors import UserNotFound

from ._format import human_bytes
from ._shared import ensure_sqlite_folder, err, fail, open_store, out, resolve_tenant, settings_from

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.ops import BackupManifest, BackupResult
    from mnemostore.ops.verify import VerifiedArchive
    from mnemostore.service.store import MnemoStore, TenantStore

__all__ = ["backup", "erase", "export", "restore"]

PathArg = Annotated[Path, typer.Argument(metavar="PATH", help="A folder, or a .tar / .tar.gz file.")]
Compress = Annotated[
    bool, typer.Option("--compress", help="Write one .tar.gz file (the suffix is added to PATH when missing).")
]

KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--signing-key-file",
        metavar="FILE",
        help="A file holding the base64 backup signing key (default: MNEMOSTORE_BACKUP_SIGNING_KEY).",
        exists=True,
        dir_okay=False,
    ),
]


def _key(path: Path | None) -> str | None:
    """The key in ``path`` (a file, so that it never shows in the process list or the shell history)."""
    return path.read_text().strip() if path is not None else None


_PHASES = {"backup": "backing up", "check": "checking archive", "restore": "restoring", "verify": "verifying"}


class _Bar:
    """A rich progress bar on stderr: one line per phase (backup, check, restore, verify), naming the table."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.label = ""
        self.task: TaskID | None = None

    def start(self, phase: str, totals: Mapping[str, int]) -> None:
        self.label = _PHASES.get(phase, phase)
        self.task = self.progress.add_task(self.label, total=sum(totals.values()) or 1)

    def advance(self, table: str, rows: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=rows, description=f"{self.label} {table}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<36}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # no bar when stderr is a file or a pipe
    )


def _tables(manifest: BackupManifest, rows: Mapping[str, int] | None = None) -> Table:
    table = Table()
    table.add_column("table")
    table.add_column("rows", justify="right")
    if rows is None:
        table.add_column("size", justify="right")
        table.add_column("sha256")
    for entry in manifest.tables:
        if rows is None:
            table.add_row(entry.name, f"{entry.rows:,}", human_bytes(entry.bytes), entry.sha256[:16])
        else:
            table.add_row(entry.name, f"{rows.get(entry.name, 0):,}")
    return table


def _report_backup(result: BackupResult, what: str) -> None:
    m = result.manifest
    out.print(_tables(m))
    signed = f"signed with key {result.signed_with}" if result.signed_with else "unsigned"
    out.print(
        Text(
            f"Backed up {what}: {m.total_rows:,} rows of {len(m.tables)} tables at schema {m.schema_revision} to "
            f"{result.path} ({human_bytes(result.bytes)}) in {result.seconds:.1f} s; {signed}"
        )
    )


def backup(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            metavar="[PATH]", show_default=False, help="A folder, or a .tar / .tar.gz file (or use --into DIR)."
        ),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="TENANT", help="Back up only this tenant (id or name).")
    ] = None,
    compress: Compress = False,
    signing_key_file: KeyFile = None,
    into: Annotated[
        Path | None,
        typer.Option(
            "--into",
            metavar="DIR",
            file_okay=False,
            help="Write DIR/mnemostore-<UTC time>.tar (.tar.gz with --compress): a scheduled backup.",
        ),
    ] = None,
    keep_daily: Annotated[
        int | None,
        typer.Option(
            "--keep-daily",
            metavar="N",
            min=0,
            help="With --into: then keep the newest archive of each of the last N days that have archives.",
        ),
    ] = None,
    keep_weekly: Annotated[
        int | None,
        typer.Option(
            "--keep-weekly",
            metavar="M",
            min=0,
            help="With --into: and the newest of each of the last M ISO weeks; older archives are deleted.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="With --into: write and delete nothing, list what the run would delete."),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Restore the new archive into a scratch database and check its row counts."),
    ] = False,
) -> None:
    """Write a backup archive of the database (or of one tenant) from one consistent snapshot.

    The store keeps serving writes meanwhile. The archive holds one JSON Lines file per table and a manifest with
    the schema revision, row counts and SHA-256 checksums; `mnemostore restore` reads it on SQLite or PostgreSQL.
    With a signing key (MNEMOSTORE_BACKUP_SIGNING_KEY or --signing-key-file) the manifest is signed (HMAC-SHA256),
    so that a restore with the key detects tampering, not only damage.

    For a schedule, --into DIR names each archive after its time and --keep-daily / --keep-weekly prune the older
    ones (grandfather-father-son; only files named like its archives are ever deleted). --verify restores the new
    archive into a scratch database (a temporary SQLite file, or a PostgreSQL database created and dropped: the
    login needs CREATEDB) and fails the command if it does not restore with the manifest's row counts.
    """
    if (path is None) == (into is None):
        fail("give either PATH or --into DIR (a folder of dated archives), not both and not neither")
    if into is None:
        given = (
            ("--keep-daily", keep_daily is not None),
            ("--keep-weekly", keep_weekly is not None),
            ("--dry-run", dry_run),
        )
        flags = [flag for flag, present in given if present]
        if flags:
            verb = "needs" if len(flags) == 1 else "need"
            fail(f"{' and '.join(flags)} {verb} --into DIR: pruning works on a folder of dated archives")
    key = _key(signing_key_file)
    with open_store(settings_from(ctx)) as store:
        found = resolve_tenant(store, tenant) if tenant is not None else None
        what = f"tenant {found.name}" if found else "the database"
        if into is not None:
            _scheduled(store, into, found.id if found else None, what, compress=compress, keep_daily=keep_daily,
                       keep_weekly=keep_weekly, dry_run=dry_run, verify=verify, key=key)  # fmt: skip
            return
        assert path is not None
        with _progress() as progress:
            result = store.backup(
                path,
                tenant_id=found.id if found else None,
                compress=compress,
                progress=_Bar(progress),
                signing_key=key,
            )
        _report_backup(result, what)
        if verify:
            _verify(store, result.path, key)


def _verify(store: MnemoStore, archive: Path, key: str | None) -> None:
    from mnemostore.ops.verify import verify_archive

    checked = verify_archive(archive, store.settings, signing_key=key)
    _report_verified(checked)


def _report_verified(checked: VerifiedArchive) -> None:
    out.print(
        Text(
            f"Verified: {checked.path} restores into a scratch {checked.backend} database with the manifest's row "
            f"counts ({checked.total_rows:,} rows) in {checked.seconds:.1f} s; the scratch database is gone"
        ),
        style="green",
    )


def _scheduled(
    store: MnemoStore,
    into: Path,
    tenant_id: uuid.UUID | None,
    what: str,
    *,
    compress: bool,
    keep_daily: int | None,
    keep_weekly: int | None,
    dry_run: bool,
    verify: bool,
    key: str | None,
) -> None:
    """One run of a scheduled backup (``_schedule.scheduled_backup``, at the clock's time), reported."""
    from ._schedule import scheduled_backup

    with _progress() as progress:
        run = scheduled_backup(
            store,
            into,
            now=datetime.now(UTC),
            tenant_id=tenant_id,
            compress=compress,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            verify=verify,
            dry_run=dry_run,
            signing_key=key,
            progress=_Bar(progress),
        )
    if dry_run:
        out.print(Text(f"Dry run: would back up {what} to {run.path}; nothing was written or deleted"))
    if run.result is not None:
        _report_backup(run.result, what)
    if run.verified is not None:
        _report_verified(run.verified)
    if run.plan is None:
        return
    verb = "Would delete" if dry_run else "Deleted"
    gone = run.plan.delete if dry_run else tuple(p.name for p in run.deleted)
    out.print(Text(f"{verb} {len(gone)} old archive(s) in {into}, keeping {len(run.plan.keep)}:"))
    for name in run.plan.keep:
        out.print(Text(f"  keep    {name}"))
    for name in gone:
        out.print(Text(f"  {'delete' if dry_run else 'deleted'} {name}"))


def restore(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The archive: a folder, .tar or .tar.gz.")],
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", metavar="TENANT", help="Restore only this tenant of the archive (id or name)."),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Re-read what was restored and compare counts and checksums.")
    ] = False,
    signing_key_file: KeyFile = None,
    allow_unsigned: Annotated[
        bool,
        typer.Option("--allow-unsigned", help="With a signing key, restore an archive that carries no signature."),
    ] = False,
) -> None:
    """Restore an archive into an empty database, or (with --tenant) one tenant the database lacks.

    The archive is checked completely before anything is written, and the restore is one transaction: a damaged
    archive, or a database that already holds the data, leaves the database as it was. With a signing key
    (MNEMOSTORE_BACKUP_SIGNING_KEY or --signing-key-file) an archive whose signature does not match is refused,
    and so is an unsigned one unless --allow-unsigned.
    """
    settings = settings_from(ctx)
    key = _key(signing_key_file)
    ensure_sqlite_folder(settings)
    with open_store(settings, create=True) as store, _progress() as progress:
        result = store.restore(
            path,
            tenant=tenant,
            verify=verify,
            progress=_Bar(progress),
            signing_key=key,
            allow_unsigned=allow_unsigned,
        )
    out.print(_tables(result.manifest, result.rows))
    tenants = ", ".join(str(t) for t in result.tenant_ids) or "none"
    out.print(
        Text(
            f"Restored {result.total_rows:,} rows into {settings.redacted_url()} in {result.seconds:.1f} s "
            f"(tenants: {tenants}); usage counters recounted"
        )
    )
    if verify:
        out.print("[green]Verified:[/] every restored table matches the archive's row count and SHA-256.")
    if result.signature == "verified":
        out.print("[green]Signature verified:[/] the archive is as the holder of the signing key wrote it.")
    elif result.signature == "unsigned":
        err.print("[yellow]Unsigned archive restored[/] (--allow-unsigned): its origin was not checked.")
    else:
        err.print(
            "[yellow]Signature not checked:[/] no signing key is configured (MNEMOSTORE_BACKUP_SIGNING_KEY), so "
            "checksums caught damage but not deliberate tampering."
        )


def _resolve_user(tenant_store: TenantStore, ref: str) -> User:
    """The user whose id, email or external id is ``ref``."""
    user: User | None = None
    with contextlib.suppress(ValueError):
        user = tenant_store.get_user(uuid.UUID(ref))
    user = user or tenant_store.get_user_by_email(ref) or tenant_store.get_user_by_external_id(ref)
    if user is None:
        raise UserNotFound(repr(ref), ": give a user id, email or external id of this tenant")
    return user


TenantOption = Annotated[str, typer.Option("--tenant", metavar="TENANT", help="Tenant id or name.")]


def export(
    ctx: typer.Context,
    tenant: TenantOption,
    path: PathArg,
    user: Annotated[
        str | None,
        typer.Option("--user", metavar="USER", help="Export only this user's rows (id, email or external id)."),
    ] = None,
    compress: Compress = False,
    signing_key_file: KeyFile = None,
) -> None:
    """Write an archive of one tenant, or of one user's rows (data portability); restorable like a backup.

    A user's archive holds their row, identities, conversations with everything in them, and memories, plus the
    tenant's row so that it restores into an empty database.
    """
    with open_store(settings_from(ctx)) as store:
        found = resolve_tenant(store, tenant)
        t = store.tenant(found.id)
        owner = _resolve_user(t, user) if user is not None else None
        with _progress() as progress:
            result = t.export(
                path,
                user_id=owner.id if owner else None,
                compress=compress,
                progress=_Bar(progress),
                signing_key=_key(signing_key_file),
            )
    _report_backup(result, f"user {owner.id} of tenant {found.name}" if owner else f"tenant {found.name}")


def erase(
    ctx: typer.Context,
    tenant: TenantOption,
    user: Annotated[str, typer.Option("--user", metavar="USER", help="User id, email or external id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a user everywhere (right to erasure): their rows in every table, usage counters, cached data.

    Prints how many rows each table lost. It cannot be undone: export the user first if the data must be kept.
    """
    with open_store(settings_from(ctx)) as store:
        found = resolve_tenant(store, tenant)
        t = store.tenant(found.id)
        owner = _resolve_user(t, user)
        if not yes:
            typer.confirm(f"Erase user {owner.id} of tenant {found.name} and everything of theirs?", abort=True)
        removed = t.erase_user(owner.id)
        usage = store.get_tenant_usage(found.id)
    table = Table()
    table.add_column("table")
    table.add_column("rows removed", justify="right")
    for name, count in removed.items():
        table.add_row(name, f"{count:,}")
    out.print(table)
    out.print(
        Text(
            f"Erased user {owner.id} of tenant {found.name}: {sum(removed.values()):,} rows. The tenant now has "
            f"{usage.users:,} users, {usage.messages:,} messages ({human_bytes(usage.storage_bytes)})."
        )
    )
