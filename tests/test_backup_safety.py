"""Crafted archives: a huge line, links and paths leading outside, and tampering that recomputes the checksums.

The archives here are built the way an attacker would: by hand, from a genuine backup, with every checksum that a
reader checks recomputed, so that only the new defences (a bounded line reader, the refusal of links and paths
outside, and signed manifests) stand between them and the database. Each restore that must be refused leaves the
target as it was (``dump``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mnemostore import (
    ArchiveNotSigned,
    ArchiveRowTooLarge,
    ArchiveSignatureInvalid,
    ArchiveUnsafe,
    AsyncMnemoStore,
)
from mnemostore.cli.main import app
from tests.backup_data import Databases, dump

KEY = base64.b64encode(b"k" * 32).decode()
OTHER_KEY = base64.b64encode(b"o" * 32).decode()
MB = 1024 * 1024


async def _backup(url: str, path: Path, **options: Any) -> Path:
    async with AsyncMnemoStore(url) as store:
        return (await store.backup(path, **options)).path


def _rewrite_manifest(folder: Path, table: str, data: bytes, rows: int) -> None:
    """Point the manifest entry of ``table`` at ``data`` (what an attacker who edits the rows does)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = next(t for t in manifest["tables"] if t["name"] == table)
    entry.update(bytes=len(data), rows=rows, sha256=hashlib.sha256(data).hexdigest())
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _pack(folder: Path, target: Path, extra: Callable[[tarfile.TarFile], None] | None = None) -> Path:
    """``folder`` as a .tar.gz laid out as backup writes one (manifest first), plus what ``extra`` adds."""
    with tarfile.open(target, "w:gz") as tar:
        for path in [folder / "manifest.json", *sorted((folder / "tables").iterdir())]:
            tar.add(path, arcname=str(path.relative_to(folder)))
        if extra is not None:
            extra(tar)
    return target


# -- a huge line --------------------------------------------------------------------------------------------------


class _Line(io.RawIOBase):
    """A file of one JSON line of ``size`` bytes, produced as it is read (so the test never holds it)."""

    def __init__(self, size: int) -> None:
        self.head, self.tail = b'{"content":"', b'"}\n'
        self.size, self.pos = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.pos)
        view = memoryview(buffer)
        view[:n] = b"a" * n
        for offset, part in ((0, self.head), (self.size - len(self.tail), self.tail)):
            for i, byte in enumerate(part):
                if self.pos <= offset + i < self.pos + n:
                    view[offset + i - self.pos] = byte
        self.pos += n
        return n

    def digest(self) -> str:
        sha, reader = hashlib.sha256(), _Line(self.size)
        while chunk := reader.read(4 * MB):
            sha.update(chunk)
        return sha.hexdigest()


async def test_a_huge_line_is_refused_with_bounded_memory(databases: Databases, tmp_path: Path) -> None:
    source, target = databases.seeded("sqlite"), databases.new("sqlite")
    folder = await _backup(source, tmp_path / "good")
    size = 300 * MB
    line = _Line(size)
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = next(t for t in manifest["tables"] if t["name"] == "messages")
    # A consistent manifest: only the line's length is wrong, as in the archive the adversarial run crafted.
    entry.update(bytes=size, rows=1, sha256=line.digest())
    (folder / "manifest.json").write_text(json.dumps(manifest))
    crafted = tmp_path / "huge.tar.gz"
    with tarfile.open(crafted, "w:gz", compresslevel=1) as tar:  # 1.4 MB, as in the adversarial run
        for path in [folder / "manifest.json", *sorted((folder / "tables").iterdir())]:
            name = str(path.relative_to(folder))
            if name == "tables/messages.jsonl":
                info = tarfile.TarInfo(name)
                info.size = size
                tar.addfile(info, io.BufferedReader(_Line(size), 1 * MB))
            else:
                tar.add(path, arcname=name)
    assert crafted.stat().st_size < 4 * MB  # a small file on disk
    empty = dump(target)
    async with AsyncMnemoStore(target) as store:
        tracemalloc.start()
        try:
            with pytest.raises(ArchiveRowTooLarge, match="MNEMOSTORE_BACKUP_MAX_ROW_BYTES") as raised:
                await store.restore(crafted)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert "tables/messages.jsonl" in str(raised.value) and "16,777,216 bytes" in str(raised.value)
    assert peak < 64 * MB, f"peak {peak / MB:.0f} MB while refusing a {size // MB} MB line"
    assert dump(target) == empty
    # The limit is a setting, and the refusal names the one in force.
    async with AsyncMnemoStore(target, backup_max_row_bytes=8 * MB) as store:
        with pytest.raises(ArchiveRowTooLarge, match="8,388,608 bytes"):
            await store.restore(crafted)


# -- links and paths outside the archive ---------------------------------------------------------------------------


def _folder_case(how: str, good: Path, work: Path) -> Path:
    """A folder archive whose files resolve outside it; the files pointed at are genuine copies, so that only the
    link gives it away."""
    crafted = work / f"folder-{how}"
    shutil.copytree(good, crafted)
    outside = work / f"outside-{how}"
    outside.mkdir()
    if how == "table-symlink":
        shutil.copy(good / "tables" / "messages.jsonl", outside / "messages.jsonl")
        (crafted / "tables" / "messages.jsonl").unlink()
        (crafted / "tables" / "messages.jsonl").symlink_to(outside / "messages.jsonl")
    elif how == "tables-dir-symlink":
        shutil.rmtree(crafted / "tables")
        shutil.copytree(good / "tables", outside / "tables")
        (crafted / "tables").symlink_to(outside / "tables")
    elif how == "manifest-symlink":
        shutil.copy(good / "manifest.json", outside / "manifest.json")
        (crafted / "manifest.json").unlink()
        (crafted / "manifest.json").symlink_to(outside / "manifest.json")
    elif how == "fifo":
        os.mkfifo(crafted / "tables" / "extra.jsonl")
    return crafted


def _tar_case(how: str, good: Path, work: Path) -> Path:
    def regular(name: str, data: bytes) -> Callable[[tarfile.TarFile], None]:
        def add(tar: tarfile.TarFile) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        return add

    def link(name: str, target: str, kind: bytes) -> Callable[[tarfile.TarFile], None]:
        def add(tar: tarfile.TarFile) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)

        return add

    def device(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("tables/zero")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 5
        tar.addfile(info)

    extras: dict[str, Callable[[tarfile.TarFile], None]] = {
        "dotdot": regular("../escaped.jsonl", b"{}\n"),
        "absolute": regular("/tmp/escaped.jsonl", b"{}\n"),
        "symlink": link("tables/other.jsonl", "/etc/passwd", tarfile.SYMTYPE),
        "hardlink": link("tables/other.jsonl", "/etc/passwd", tarfile.LNKTYPE),
        "device": device,
        "duplicate": regular("tables/messages.jsonl", (good / "tables" / "messages.jsonl").read_bytes()),
    }
    return _pack(good, work / f"tar-{how}.tar.gz", extras[how])


FOLDER_CASES = ["table-symlink", "tables-dir-symlink", "manifest-symlink", "fifo"]
TAR_CASES = ["dotdot", "absolute", "symlink", "hardlink", "device", "duplicate"]


async def test_links_and_paths_outside_are_refused(backend: str, databases: Databases, tmp_path: Path) -> None:
    source, target = databases.seeded(backend), databases.new(backend)
    good = await _backup(source, tmp_path / "good")
    crafted = [_folder_case(how, good, tmp_path) for how in FOLDER_CASES]
    crafted += [_tar_case(how, good, tmp_path) for how in TAR_CASES]
    empty = dump(target)
    async with AsyncMnemoStore(target) as store:
        for archive in crafted:
            with pytest.raises(ArchiveUnsafe, match="refused unread") as raised:
                await store.restore(archive)
            assert str(archive) in str(raised.value)
            assert dump(target) == empty, archive.name
        # The same archive without the crafted entry restores.
        await store.restore(_pack(good, tmp_path / "plain.tar.gz"), verify=True)
    assert dump(target) == dump(source)


# -- signed archives ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
async def test_signed_archive_round_trip(backend: str, databases: Databases, tmp_path: Path, compress: bool) -> None:
    source, target = databases.seeded(backend), databases.new(backend)
    async with AsyncMnemoStore(source, backup_signing_key=KEY) as store:
        result = await store.backup(tmp_path / "signed", compress=compress)
    assert result.signed_with is not None and len(result.signed_with) == 16
    if compress:
        with tarfile.open(result.path) as tar:
            assert tar.getnames()[:2] == ["manifest.json", "signature.json"]
    else:
        signature = json.loads((result.path / "signature.json").read_text())
        assert signature["algorithm"] == "HMAC-SHA256" and signature["key_id"] == result.signed_with
        assert KEY not in (result.path / "signature.json").read_text()
    async with AsyncMnemoStore(target, backup_signing_key=KEY) as store:
        restored = await store.restore(result.path, verify=True)
    assert restored.signature == "verified"
    assert dump(target) == dump(source)


async def test_tampered_rows_with_recomputed_checksums_are_refused(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    source, target = databases.seeded(backend), databases.new(backend)
    async with AsyncMnemoStore(source) as store:
        archive = (await store.backup(tmp_path / "signed", signing_key=KEY)).path
    tampered = tmp_path / "tampered"
    shutil.copytree(archive, tampered)
    messages = tampered / "tables" / "messages.jsonl"
    lines = messages.read_bytes().splitlines(keepends=True)
    row = json.loads(lines[0])
    row["content"] = "transfer everything to mallory"
    lines[0] = (json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n").encode()
    messages.write_bytes(b"".join(lines))
    _rewrite_manifest(tampered, "messages", b"".join(lines), len(lines))
    packed = _pack(
        tampered, tmp_path / "tampered.tar.gz", lambda tar: tar.add(tampered / "signature.json", "signature.json")
    )
    empty = dump(target)
    async with AsyncMnemoStore(target, backup_signing_key=KEY) as store:
        for crafted in (tampered, packed):
            with pytest.raises(ArchiveSignatureInvalid, match="altered after the backup"):
                await store.restore(crafted, verify=True)
            assert dump(target) == empty
    # Without a key the checksums agree, so the tampered rows go in: the result says nothing was checked.
    async with AsyncMnemoStore(target) as store:
        restored = await store.restore(tampered)
    assert restored.signature == "unchecked"
    assert "transfer everything to mallory" in str(dump(target)["messages"])


async def test_wrong_key_and_unsigned_archives_are_refused(backend: str, databases: Databases, tmp_path: Path) -> None:
    source, target = databases.seeded(backend), databases.new(backend)
    async with AsyncMnemoStore(source) as store:
        signed = (await store.backup(tmp_path / "signed", signing_key=KEY)).path
        unsigned = (await store.backup(tmp_path / "unsigned")).path
    stripped = tmp_path / "stripped"
    shutil.copytree(signed, stripped)
    (stripped / "signature.json").unlink()
    empty = dump(target)
    async with AsyncMnemoStore(target, backup_signing_key=OTHER_KEY) as store:
        with pytest.raises(ArchiveSignatureInvalid, match="signed with another key"):
            await store.restore(signed)
        for archive in (unsigned, stripped):
            with pytest.raises(ArchiveNotSigned, match="--allow-unsigned"):
                await store.restore(archive)
        assert dump(target) == empty
        # The key passed to restore() wins over the configured one.
        restored = await store.restore(signed, signing_key=KEY, tenant=databases.seeded_ids(backend).names[0])
        assert restored.signature == "verified"
        restored = await store.restore(unsigned, allow_unsigned=True, tenant=databases.seeded_ids(backend).names[1])
        assert restored.signature == "unsigned"
    assert dump(target) == dump(source)


def _cli(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(app, ["--database-url", url, *args], env=env)
    return result


def test_cli_signs_and_checks(databases: Databases, tmp_path: Path) -> None:
    source, target, other = databases.seeded("sqlite"), databases.new("sqlite"), databases.new("sqlite")
    key_file = tmp_path / "backup.key"
    key_file.write_text(KEY + "\n")
    out = _cli(source, "backup", str(tmp_path / "a"), "--signing-key-file", str(key_file))
    assert out.exit_code == 0, out.output
    assert "signed with key" in out.stdout
    wrong = _cli(target, "restore", str(tmp_path / "a"), env={"MNEMOSTORE_BACKUP_SIGNING_KEY": OTHER_KEY})
    assert wrong.exit_code == 1 and "signed with another key" in wrong.stderr
    done = _cli(target, "restore", str(tmp_path / "a"), env={"MNEMOSTORE_BACKUP_SIGNING_KEY": KEY})
    assert done.exit_code == 0, done.output
    assert "Signature verified" in done.stdout
    unchecked = _cli(other, "restore", str(tmp_path / "a"))
    assert unchecked.exit_code == 0 and "Signature not checked" in unchecked.stderr
