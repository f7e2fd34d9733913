"""Reading an archive (folder, ``.tar`` or ``.tar.gz``) and checking it against its manifest, safely.

What a crafted archive cannot do here:

- **make the reader hold a huge line**: lines are read with ``readline(limit)``, so at most ``max_row_bytes`` (plus
  the reader's buffer) is in memory at once, and a longer line is refused (ArchiveRowTooLarge) as soon as the limit
  is crossed, not after it has been read whole;
- **point outside itself**: a tar member that is a symbolic or hard link, a device or FIFO, or whose name is
  absolute or climbs with ``..``, makes the whole archive refused (ArchiveUnsafe) when it is opened, before any
  file is read; so does a name listed twice (the last copy would win, unseen by a listing). In a folder archive,
  symbolic links and non-regular files at the top, in ``tables/``, or on the way to a file are refused, and files
  are opened with ``O_NOFOLLOW`` so a link swapped in after the check is refused too;
- **pass altered rows for genuine ones**, with a signing key: ``signature.json`` must match ``manifest.json`` (see
  ``_signing``), and every file must match the manifest's size, row count and SHA-256.

Nothing is ever extracted to disk: files are streamed from the folder or the tar.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final

from mnemostore.errors import ArchiveCorrupted, ArchiveRowTooLarge, ArchiveUnsafe, BackupError
from mnemostore.ops._archive import MANIFEST_NAME, TABLES_DIR, BackupManifest, TableEntry
from mnemostore.ops._signing import MAX_SIGNATURE_BYTES, SIGNATURE_NAME, SignatureStatus, SigningKey, check_signature

__all__ = ["DEFAULT_MAX_ROW_BYTES", "ArchiveReader"]

DEFAULT_MAX_ROW_BYTES: Final = 16 * 1024 * 1024
_MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, UnicodeDecodeError)


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member may not be in a mnemostore archive, or None."""
    if member.issym() or member.islnk():
        kind = "a symbolic link" if member.issym() else "a hard link"
        return f"{member.name!r} is {kind} (to {member.linkname!r})"
    if member.ischr() or member.isblk() or member.isfifo():
        return f"{member.name!r} is a device or FIFO"
    if not (member.isfile() or member.isdir()):
        return f"{member.name!r} is not a regular file (tar type {member.type!r})"
    name = member.name
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return f"{name!r} is an absolute path"
    if ".." in name.split("/") or "\x00" in name:
        return f"{name!r} leads outside the archive"
    return None


class ArchiveReader:
    """Reads an archive and checks it against its manifest (and, with a key, the manifest against its signature).

    Every read error (a truncated gzip stream, a damaged tar header, a missing file) becomes ArchiveCorrupted.

    Args:
        max_row_bytes: the longest line (one row, newline included) read from a table file.
        signing_key: the operator's key; None checks no signature (``signature_status`` is ``unchecked``).
        allow_unsigned: with a key, accept an archive that carries no signature.

    Raises:
        ArchiveUnsafe, ArchiveSignatureInvalid, ArchiveNotSigned, ArchiveCorrupted, ArchiveVersionUnsupported.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
        signing_key: SigningKey | None = None,
        allow_unsigned: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.max_row_bytes = max_row_bytes
        self._tar: tarfile.TarFile | None = None
        if self.path.is_dir():
            pass
        elif self.path.is_file():
            try:
                self._tar = tarfile.open(self.path, "r:*")  # noqa: SIM115 - closed by close()
            except _READ_ERRORS as error:
                raise ArchiveCorrupted(
                    f"{self.path} is neither a backup folder nor a readable .tar/.tar.gz ({error}): "
                    "the archive is damaged or is not a mnemostore backup"
                ) from None
        else:
            raise BackupError(f"{self.path} does not exist: give the folder or .tar(.gz) file a backup wrote")
        try:
            self._check_entries()
            raw = self._read_small(MANIFEST_NAME, _MAX_MANIFEST_BYTES, "manifest.json is implausibly large")
            assert raw is not None
            signature = self._read_small(SIGNATURE_NAME, MAX_SIGNATURE_BYTES, "signature.json is too large")
            # The signature first: an altered manifest is reported as altered, whatever else is wrong with it.
            self.signature_status: SignatureStatus = check_signature(
                raw, signature, signing_key, allow_unsigned=allow_unsigned, where=str(self.path)
            )
            self.signed = signature is not None
            self.manifest = BackupManifest.from_json(raw, str(self.path))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    # -- what the archive may hold --------------------------------------------------------------------------------

    def _unsafe(self, problem: str) -> ArchiveUnsafe:
        return ArchiveUnsafe(
            f"{self.path}: {problem}; a mnemostore backup holds regular files inside it only, so this archive was "
            "crafted or altered and is refused unread; nothing was written"
        )

    def _check_entries(self) -> None:
        """Refuse links, devices and paths leading outside, before reading anything."""
        if self._tar is not None:
            try:
                members = self._tar.getmembers()
            except _READ_ERRORS as error:
                raise ArchiveCorrupted(f"{self.path} is unreadable ({error}): it is truncated or damaged") from None
            seen: set[str] = set()
            for member in members:
                problem = _member_problem(member)
                if problem is not None:
                    raise self._unsafe(problem)
                name = posixpath.normpath(member.name)
                if member.isfile():
                    if name in seen:
                        raise self._unsafe(f"{member.name!r} is in the tar twice")
                    seen.add(name)
            return
        for folder in (self.path, self.path / TABLES_DIR):
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                raise self._unsafe(f"{TABLES_DIR} is not a folder") from None
            except OSError as error:
                raise ArchiveCorrupted(f"{self.path}: cannot list {folder} ({error})") from None
            for entry in entries:
                if entry.is_symlink():
                    target = os.readlink(entry.path)
                    raise self._unsafe(f"{Path(entry.path).relative_to(self.path)} is a symbolic link (to {target!r})")
                if not (entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False)):
                    raise self._unsafe(f"{Path(entry.path).relative_to(self.path)} is a device, FIFO or socket")

    def _open_file(self, name: str) -> IO[bytes] | None:
        """A file of a folder archive, never through a link; None when it is missing."""
        target = self.path
        for part in name.split("/"):
            target = target / part
            try:
                mode = target.lstat().st_mode
            except FileNotFoundError:
                return None
            if stat.S_ISLNK(mode):
                raise self._unsafe(f"{name} leads through a symbolic link ({target.relative_to(self.path)})")
        if not stat.S_ISREG(mode):
            raise self._unsafe(f"{name} is not a regular file")
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError as error:
            raise self._unsafe(f"{name} cannot be opened as a regular file ({error})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped after the check above
            os.close(fd)
            raise self._unsafe(f"{name} is not a regular file")
        return os.fdopen(fd, "rb")

    def _open(self, name: str, *, required: bool = True) -> IO[bytes] | None:
        if self._tar is None:
            fh = self._open_file(name)
        else:
            try:
                member = self._tar.getmember(name)
            except KeyError:
                member = None
            except _READ_ERRORS as error:
                raise ArchiveCorrupted(f"{self.path} is unreadable ({error}): it is truncated or damaged") from None
            fh = None
            if member is not None:
                fh = self._tar.extractfile(member) if member.isfile() else None
                if fh is None:
                    raise ArchiveCorrupted(f"{self.path}: {name} is not a regular file: the archive is damaged")
        if fh is None and required:
            raise ArchiveCorrupted(f"{self.path}: {name} is missing: the archive is incomplete")
        return fh

    def _read_small(self, name: str, limit: int, too_large: str) -> bytes | None:
        """A whole small file (manifest, signature), at most ``limit`` bytes; None when an optional one is missing."""
        try:
            fh = self._open(name, required=name == MANIFEST_NAME)
            if fh is None:
                return None
            with fh:
                raw = fh.read(limit + 1)
        except _READ_ERRORS as error:
            raise ArchiveCorrupted(f"{self.path}: {name} is unreadable ({error}): it is damaged") from None
        if len(raw) > limit:
            raise ArchiveCorrupted(f"{self.path}: {too_large}: this is not a mnemostore backup")
        return raw

    # -- the tables -----------------------------------------------------------------------------------------------

    def verify(self, on_table: Callable[[TableEntry], None] | None = None) -> None:
        """Check every table file's size, row count and SHA-256 against the manifest, before anything is written.

        Raises:
            ArchiveCorrupted: a file is missing, truncated, longer, or its bytes changed.
            ArchiveRowTooLarge: a line is longer than ``max_row_bytes``.
        """
        for entry in self.manifest.tables:
            for _ in self.lines(entry):
                pass
            if on_table is not None:
                on_table(entry)

    def lines(self, entry: TableEntry) -> Iterator[bytes]:
        """The lines of a table file, each with its newline; raises ArchiveCorrupted at the end if the file does not
        match its manifest entry (so a file changed after ``verify`` still fails the restore, which rolls back).

        At most ``max_row_bytes + 1`` bytes of a line are read before it is refused (ArchiveRowTooLarge).
        """
        digest = hashlib.sha256()
        rows = size = 0
        limit = self.max_row_bytes
        try:
            fh = self._open(entry.file)
            assert fh is not None
            with fh:
                while line := fh.readline(limit + 1):
                    if len(line) > limit:
                        raise ArchiveRowTooLarge(
                            f"{self.path}: row {rows + 1} of {entry.file} is longer than {limit:,} bytes, the "
                            "largest row a restore reads (MNEMOSTORE_BACKUP_MAX_ROW_BYTES): raise that setting if "
                            "the archive is genuine and holds rows that large; nothing was restored"
                        )
                    digest.update(line)
                    size += len(line)
                    if size > entry.bytes:
                        raise ArchiveCorrupted(
                            f"{self.path}: {entry.file} is longer than the manifest says: the archive was altered"
                        )
                    if not line.endswith(b"\n"):
                        break  # a last line without its newline: a truncated file, reported below
                    rows += 1
                    yield line
        except _READ_ERRORS as error:
            raise ArchiveCorrupted(
                f"{self.path}: cannot read {entry.file} ({error}): the archive is truncated or damaged"
            ) from None
        if size != entry.bytes or rows != entry.rows:
            raise ArchiveCorrupted(
                f"{self.path}: {entry.file} has {rows} rows in {size} bytes, the manifest says {entry.rows} rows in "
                f"{entry.bytes} bytes: the archive is truncated or was altered; nothing was restored"
            )
        if digest.hexdigest() != entry.sha256:
            raise ArchiveCorrupted(
                f"{self.path}: the SHA-256 of {entry.file} does not match the manifest: the archive was altered or "
                "damaged; nothing was restored"
            )

    def tenants(self) -> list[dict[str, Any]]:
        """The tenants rows of the archive (small: read once to find a tenant by name or id)."""
        entry = self.manifest.table("tenants")
        if entry is None:
            return []
        return [json.loads(line) for line in self.lines(entry)]
