"""Encryption of sensitive fields at rest: the one codec every sealed value and row goes through.

The repositories call ``FieldCodec.seal`` on the values they write and ``FieldCodec.open`` on the rows they map,
so encryption happens at the store boundary: services and callers only ever see plaintext, the database only ever
sees ciphertext (and so does Redis, see "Outside the database"). Written once, used by both twins of the
repositories.

Which fields are sealed, and how:

* ``users.email``: the value becomes an envelope, and ``email_hash`` gets its blind index (below);
* ``messages.metadata``: the value of each top-level key named in ``secret_metadata_keys`` (any JSON value)
  becomes an envelope string; the other keys stay readable;
* ``tool_executions.parameters``: the whole object becomes one envelope, stored as a JSON string.

**Envelope.** ``enc:v1:<key id>:<base64url(nonce | ciphertext | tag)>``: AES-GCM with a fresh 96-bit random
nonce per value. The associated data names the tenant and the field (``mnemostore:<tenant>:users.email``), so a
ciphertext copied into another tenant's row or another field does not open. The key id says which key of
``MNEMOSTORE_ENCRYPTION_KEYS`` sealed the value: the first key seals, every listed key opens. That is key
rotation: put a new key first, and old rows stay readable while ``rotate`` (``mnemostore rotate-keys``) re-seals
them with it; then the old key can go. Without keys, values are written in clear exactly as before encryption
existed, and an envelope met on read names the missing key (``EncryptionKeyError``).

**Outside the database.** The Redis cache and the events it publishes hold what the database holds: the cache
seals message metadata and emails with this codec (``seal_metadata``, ``seal_email``: the same key and associated
data as the rows, a fresh nonce) and opens them on read; it reaches the codec through the ``Sealer`` protocol of
``mnemostore.cache``, which ``FieldCodec`` satisfies.

**Blind index.** AES-GCM ciphertexts are random, so equal emails do not give equal ciphertexts and cannot be
looked up or kept unique. ``email_hash`` is HMAC-SHA256(``MNEMOSTORE_BLIND_INDEX_KEY``, field, tenant, email):
equal emails of one tenant give equal hashes, which the unique index ``(tenant_id, email_hash)`` and
``get_user_by_email`` use, while nobody without the key can test a guess. Its key is separate from the
encryption keys and does not rotate with them, because every stored hash depends on it (``rotate`` recomputes
the hashes, so replacing it is possible, but lookups miss old rows until that has run).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mnemostore.config import Settings
from mnemostore.errors import EncryptionKeyError

__all__ = ["ENVELOPE_PREFIX", "SEALED_COLUMNS", "FieldCodec", "KeyRotationReport", "envelope_key_id"]

ENVELOPE_PREFIX: Final = "enc:v1:"
_ENVELOPE = re.compile(r"enc:v1:([A-Za-z0-9_.-]{1,64}):([A-Za-z0-9_-]+={0,2})")
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16

# Table -> the columns ``seal`` may write (key rotation reads and rewrites exactly these).
SEALED_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "users": ("email", "email_hash"),
    "messages": ("metadata",),
    "tool_executions": ("parameters",),
}

Values = dict[str, Any]


def envelope_key_id(value: object) -> str | None:
    """The key id of an envelope, or None when ``value`` is not one."""
    if isinstance(value, str) and value.startswith(ENVELOPE_PREFIX):
        match = _ENVELOPE.fullmatch(value)
        return match.group(1) if match else None
    return None


class _Opened:
    """A row with some attributes replaced by their plaintext; the mapping functions read it like the row."""

    __slots__ = ("_overrides", "_row")

    def __init__(self, row: Any, overrides: Mapping[str, Any]) -> None:
        self._row = row
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._row, name)


class FieldCodec:
    """Seals sensitive values on the way in and opens them on the way out (see the module docstring).

    Built once per database from the settings; holds no state but the keys, so one instance serves every
    connection and thread.
    """

    envelope_prefix: Final = ENVELOPE_PREFIX.encode()  # what a sealed value's JSON starts with (``Sealer``)

    def __init__(
        self,
        keys: Sequence[tuple[str, bytes]] = (),
        *,
        blind_index_key: bytes | None = None,
        secret_metadata_keys: Sequence[str] = (),
    ) -> None:
        self._ciphers = {kid: AESGCM(key) for kid, key in keys}
        self.current_key_id: str | None = keys[0][0] if keys else None
        self._index_key = blind_index_key
        self.secret_metadata_keys = frozenset(secret_metadata_keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> FieldCodec:
        return cls(
            settings.encryption_keyring(),
            blind_index_key=settings.blind_index_secret(),
            secret_metadata_keys=settings.secret_metadata_keys,
        )

    @property
    def encrypts(self) -> bool:
        """Whether new values are sealed (some key is configured); otherwise they are written in clear."""
        return self.current_key_id is not None

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    # -- values written ---------------------------------------------------------------------------------------

    def seal(self, table: str, tenant_id: uuid.UUID, values: Mapping[str, Any]) -> Values:
        """A copy of ``values`` (an insert or update of ``table``) with its sensitive fields sealed."""
        out = dict(values)
        if table == "users" and "email" in out:
            email = out["email"]
            out["email_hash"] = self.blind_index(tenant_id, email) if email is not None else None
            if email is not None and self.encrypts:
                out["email"] = self._seal_text(email, tenant_id, "users.email")
        elif table == "messages" and "metadata" in out and self.encrypts:
            out["metadata"] = self._seal_metadata(out["metadata"], tenant_id)
        elif table == "tool_executions" and "parameters" in out and self.encrypts:
            out["parameters"] = self._seal_text(_dumps(out["parameters"]), tenant_id, "tool_executions.parameters")
        return out

    def seal_metadata(self, tenant_id: uuid.UUID, metadata: Any) -> Any:
        """Message metadata with its secret values sealed, as the database holds it (the same object when no
        value is secret or nothing is sealed: the fast path)."""
        if self.encrypts and isinstance(metadata, dict) and not self.secret_metadata_keys.isdisjoint(metadata):
            return self._seal_metadata(metadata, tenant_id)
        return metadata

    def seal_email(self, tenant_id: uuid.UUID, email: str | None) -> str | None:
        """A user's email as the database holds it (sealed when a key is configured)."""
        if email is None or not self.encrypts:
            return email
        return self._seal_text(email, tenant_id, "users.email")

    def open_email(self, tenant_id: uuid.UUID, email: str | None) -> str | None:
        """An email read back: opened when it is sealed, else as it is.

        Raises:
            EncryptionKeyError: sealed with a key that is not configured, or altered.
        """
        if envelope_key_id(email) is None:
            return email
        assert email is not None
        return self._open_text(email, tenant_id, "users.email")

    def blind_index(self, tenant_id: uuid.UUID, email: str) -> str | None:
        """The email's lookup hash in this tenant (hex), or None without a blind index key."""
        if self._index_key is None:
            return None
        message = b"users.email\x00" + tenant_id.bytes + email.encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()

    def _seal_metadata(self, metadata: Mapping[str, Any], tenant_id: uuid.UUID) -> Values:
        return {
            key: (
                self._seal_text(_dumps(value), tenant_id, f"messages.metadata.{key}")
                if key in self.secret_metadata_keys
                else value
            )
            for key, value in metadata.items()
        }

    def _seal_text(self, plaintext: str, tenant_id: uuid.UUID, field: str) -> str:
        kid = self.current_key_id
        assert kid is not None, "seal only when a key is configured"
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, plaintext.encode(), _aad(tenant_id, field))
        return f"{ENVELOPE_PREFIX}{kid}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    # -- rows read --------------------------------------------------------------------------------------------

    def open(self, table: str, row: Any) -> Any:
        """``row`` with its sealed fields in plaintext (the row itself when nothing in it is sealed).

        Raises:
            EncryptionKeyError: a value was sealed with a key that is not configured, or does not open with it.
        """
        overrides = self._open_fields(table, row)
        return _Opened(row, overrides) if overrides else row

    def _open_fields(self, table: str, row: Any) -> Values:
        tenant_id = row.tenant_id
        if table == "users":
            if envelope_key_id(row.email) is not None:
                return {"email": self._open_text(row.email, tenant_id, "users.email")}
        elif table == "messages":
            metadata = row.metadata
            if isinstance(metadata, dict) and any(envelope_key_id(v) is not None for v in metadata.values()):
                return {"metadata": self._open_metadata(metadata, tenant_id)}
        elif table == "tool_executions" and envelope_key_id(row.parameters) is not None:
            plain = self._open_text(row.parameters, tenant_id, "tool_executions.parameters")
            return {"parameters": json.loads(plain)}
        return {}

    def open_metadata(self, tenant_id: uuid.UUID, metadata: Any) -> Any:
        """Message metadata with its sealed values opened (the same object when none is sealed: the fast path)."""
        if isinstance(metadata, dict):
            for value in metadata.values():  # a loop, not any(): this runs for every message of every page
                if isinstance(value, str) and value.startswith(ENVELOPE_PREFIX):
                    return self._open_metadata(metadata, tenant_id)
        return metadata

    def _open_metadata(self, metadata: Mapping[str, Any], tenant_id: uuid.UUID) -> Values:
        return {
            key: (
                json.loads(self._open_text(value, tenant_id, f"messages.metadata.{key}"))
                if envelope_key_id(value) is not None
                else value
            )
            for key, value in metadata.items()
        }

    def _open_text(self, envelope: str, tenant_id: uuid.UUID, field: str) -> str:
        match = _ENVELOPE.fullmatch(envelope)
        assert match is not None, "callers check envelope_key_id first"
        kid, body = match.groups()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            listed = ", ".join(repr(k) for k in self._ciphers) or "no keys"
            raise EncryptionKeyError(
                f"{field} of a row of tenant {tenant_id} was encrypted with key {kid!r}, but "
                f"MNEMOSTORE_ENCRYPTION_KEYS has {listed}: add key {kid!r} back (a rotated-out key stays "
                "needed until `mnemostore rotate-keys` has re-encrypted every row)"
            )
        try:
            raw = base64.urlsafe_b64decode(body)
            if len(raw) < _NONCE_BYTES + _TAG_BYTES:
                raise ValueError("too short")
            return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(tenant_id, field)).decode()
        except (InvalidTag, ValueError) as error:
            raise EncryptionKeyError(
                f"{field} of a row of tenant {tenant_id} does not decrypt with the key configured as {kid!r}: "
                f"that is not the key that encrypted it (or the stored value was altered). Set {kid!r} in "
                "MNEMOSTORE_ENCRYPTION_KEYS back to its original value"
            ) from error

    # -- key rotation -----------------------------------------------------------------------------------------

    def reseal(self, table: str, row: Any) -> Values | None:
        """New values for the sealed columns of ``row`` when they are not all sealed with the current key.

        Returns None when the row is already current: every sensitive value is sealed with the current key and
        the email's blind index is the one the current blind index key gives.
        """
        tenant_id = row.tenant_id
        if table == "users":
            plain = self._open_fields(table, row).get("email", row.email)
            values = self.seal(table, tenant_id, {"email": plain})
            stale = plain is not None and envelope_key_id(row.email) != self.current_key_id
            return values if stale or values["email_hash"] != row.email_hash else None
        if table == "messages":
            metadata = row.metadata
            if not isinstance(metadata, dict):
                return None
            stale = any(
                envelope_key_id(value) not in {None, self.current_key_id}
                or (key in self.secret_metadata_keys and envelope_key_id(value) is None)
                for key, value in metadata.items()
            )
            if not stale:
                return None
            plain = self._open_metadata(metadata, tenant_id)
            sealed = self._seal_metadata(plain, tenant_id)
            # Values sealed under a key no longer listed as secret stay sealed (with the current key).
            for key, value in metadata.items():
                if envelope_key_id(value) is not None and key not in self.secret_metadata_keys:
                    sealed[key] = self._seal_text(_dumps(plain[key]), tenant_id, f"messages.metadata.{key}")
            return {"metadata": sealed}
        if table == "tool_executions":
            if envelope_key_id(row.parameters) == self.current_key_id:
                return None
            plain = self._open_fields(table, row).get("parameters", row.parameters)
            return self.seal(table, tenant_id, {"parameters": plain})
        raise ValueError(f"{table} has no sealed columns")


def _aad(tenant_id: uuid.UUID, field: str) -> bytes:
    return f"mnemostore:{tenant_id}:{field}".encode()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotationReport:
    """What ``rotate_keys`` did, per table: rows read, and rows re-encrypted (the others were current)."""

    key_id: str
    scanned: dict[str, int]
    rewritten: dict[str, int]

    @property
    def total_rewritten(self) -> int:
        return sum(self.rewritten.values())
