"""Signed archives: an HMAC-SHA256 over ``manifest.json``, kept beside it in ``signature.json``.

The manifest holds every table file's size, row count and SHA-256, and the reader checks every file against it, so
authenticating the manifest's exact bytes authenticates the whole archive: rows altered and checksums recomputed
change the manifest, and the signature no longer matches. Damage is caught by the checksums alone; tampering needs
the key.

Why HMAC-SHA256 (stdlib ``hmac``) and not a public-key signature (Ed25519): a restore of sealed data already needs
the operator's secrets (the encryption keys travel with the deployment, not with the archive), so the hosts that
restore are the hosts that hold secrets anyway, and one more symmetric key adds no distribution problem. It keeps
key handling the same as ``MNEMOSTORE_BLIND_INDEX_KEY`` (32 random bytes in base64), needs no key pair tooling,
and cannot be misconfigured by pasting the wrong half of a pair. The cost: whoever can verify can also sign, so
keep the key where the encryption keys are, not beside the archives.

``signature.json``::

    {"algorithm": "HMAC-SHA256", "key_id": "1f3a…", "signed": "manifest.json", "signature": "<64 hex digits>"}

``key_id`` is a hash of the key (never the key), so a restore with another key says so instead of "altered". The
MAC covers a context string and the manifest's bytes, so a signature of something else never passes for one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Final, Literal

from mnemostore.errors import ArchiveNotSigned, ArchiveSignatureInvalid, ConfigurationError

__all__ = ["SIGNATURE_NAME", "SignatureStatus", "SigningKey", "check_signature", "sign_manifest"]

SIGNATURE_NAME: Final = "signature.json"
ALGORITHM: Final = "HMAC-SHA256"
MAX_SIGNATURE_BYTES: Final = 64 * 1024
_CONTEXT: Final = b"mnemostore-backup-signature-v1\n"

SignatureStatus = Literal["verified", "unsigned", "unchecked"]
"""``verified``: signed, and the signature matches the key. ``unsigned``: a key is configured, the archive carries no
signature and the caller allowed that. ``unchecked``: no key configured, so nothing was checked."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The operator's backup key (``MNEMOSTORE_BACKUP_SIGNING_KEY``): raw bytes, and an id that names it safely."""

    secret: bytes

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"mnemostore-backup-key-id\n" + self.secret).hexdigest()[:16]

    @classmethod
    def from_base64(cls, text: str, source: str = "MNEMOSTORE_BACKUP_SIGNING_KEY") -> SigningKey:
        """Parse a base64 key (standard or URL-safe, padding optional) of at least 16 bytes.

        Raises:
            ConfigurationError: not base64, or too short.
        """
        cleaned = text.strip().replace("+", "-").replace("/", "_")
        try:
            secret = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) < 16:
            raise ConfigurationError(
                f"{source} must be at least 16 bytes of base64 (32 is best): make one with "
                '`python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"`'
            )
        return cls(secret)

    def mac(self, manifest: bytes) -> str:
        return hmac.new(self.secret, _CONTEXT + manifest, hashlib.sha256).hexdigest()


def sign_manifest(manifest: bytes, key: SigningKey) -> bytes:
    """The ``signature.json`` of an archive whose ``manifest.json`` holds ``manifest``."""
    data = {"algorithm": ALGORITHM, "key_id": key.key_id, "signed": "manifest.json", "signature": key.mac(manifest)}
    return (json.dumps(data, indent=2) + "\n").encode()


def check_signature(
    manifest: bytes, signature: bytes | None, key: SigningKey | None, *, allow_unsigned: bool, where: str
) -> SignatureStatus:
    """Check ``signature`` (the bytes of ``signature.json``, None when the archive has none) over ``manifest``.

    Without a key nothing is checked (``unchecked``): the archive is trusted as it was before signing existed.

    Raises:
        ArchiveSignatureInvalid: signed, and the signature does not match ``key`` (or is malformed).
        ArchiveNotSigned: a key is configured, the archive is unsigned, and ``allow_unsigned`` is false.
    """
    if key is None:
        return "unchecked"
    if signature is None:
        if allow_unsigned:
            return "unsigned"
        raise ArchiveNotSigned(
            f"{where} carries no signature ({SIGNATURE_NAME}) and a backup signing key is configured: it was written "
            "without a key, or its signature was removed. Restore it only if you trust where it came from, with "
            "`restore --allow-unsigned` (allow_unsigned=True); nothing was written"
        )
    try:
        data = json.loads(signature)
        algorithm, key_id, mac = data["algorithm"], data["key_id"], data["signature"]
    except (ValueError, UnicodeDecodeError, TypeError, KeyError):
        raise ArchiveSignatureInvalid(f"{where}: {SIGNATURE_NAME} is malformed: the archive was altered") from None
    if algorithm != ALGORITHM or not isinstance(mac, str):
        raise ArchiveSignatureInvalid(
            f"{where}: {SIGNATURE_NAME} names algorithm {algorithm!r}, this mnemostore checks {ALGORITHM} only"
        )
    if not hmac.compare_digest(mac.encode(), key.mac(manifest).encode()):
        if key_id != key.key_id:
            raise ArchiveSignatureInvalid(
                f"{where} was signed with another key (id {key_id!r}; the configured MNEMOSTORE_BACKUP_SIGNING_KEY "
                f"has id {key.key_id!r}): restore it with the key that signed it; nothing was written"
            )
        raise ArchiveSignatureInvalid(
            f"{where}: the signature does not match manifest.json under the configured key: the archive was altered "
            "after the backup; nothing was written"
        )
    return "verified"
