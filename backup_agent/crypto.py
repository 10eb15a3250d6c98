"""Keys and encryption for the backup agent.

Key hierarchy::

    passphrase --scrypt(salt, n, r, p)--> key-encryption key (KEK, 32 bytes)
    KEK --AES-256-GCM--> wrapped KeyBundle (chunk_key, id_key, manifest_key)

The wrapped blob (``wrap_keys``) is self-describing JSON and is what the portal
stores for the machine: without the passphrase it is opaque to the server.

* ``chunk_key``    encrypts chunk records (AES-256-GCM, fresh 12-byte nonce,
  the 32 raw bytes of the chunk id as associated data).
* ``id_key``       keys BLAKE3 so chunk ids do not reveal plaintext hashes.
* ``manifest_key`` encrypts manifests and other metadata blobs.

No Django import here: this module is used by the stand-alone agent.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
import threading
from dataclasses import dataclass

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = [
    "KeyBundle",
    "WrongPassphrase",
    "InvalidPassphrase",
    "IntegrityError",
    "validate_passphrase",
    "generate_passphrase",
    "wrap_keys",
    "unwrap_keys",
    "rewrap_keys",
    "chunk_id",
    "Hasher",
    "encrypt_chunk",
    "decrypt_chunk",
    "encrypt_blob",
    "decrypt_blob",
    "MIN_PASSPHRASE_LENGTH",
    "DEFAULT_SCRYPT",
]

MIN_PASSPHRASE_LENGTH = 16
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
#: scrypt parameters for new blobs: 32 MiB of memory, ~0.1 s on a desktop CPU.
DEFAULT_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
WRAP_FORMAT = "backup-portal-keys"
WRAP_VERSION = 1

# Chunk record payload flags (first plaintext byte inside the AEAD).
FLAG_RAW = 0x00
FLAG_ZSTD = 0x01
BLOB_VERSION = 0x01

_PRINTABLE = set(chr(c) for c in range(0x20, 0x7F))


class WrongPassphrase(Exception):
    """The passphrase does not unlock the wrapped key bundle."""

    def __init__(self, message: str = "The passphrase does not unlock this machine's keys."):
        super().__init__(message)


class InvalidPassphrase(ValueError):
    """A new passphrase does not meet the policy."""


class IntegrityError(Exception):
    """Ciphertext failed authentication or does not match its id."""


@dataclass(frozen=True)
class KeyBundle:
    chunk_key: bytes
    id_key: bytes
    manifest_key: bytes

    def __post_init__(self) -> None:
        for name in ("chunk_key", "id_key", "manifest_key"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != KEY_SIZE:
                raise ValueError(f"{name} must be {KEY_SIZE} bytes")

    @classmethod
    def generate(cls) -> KeyBundle:
        return cls(os.urandom(KEY_SIZE), os.urandom(KEY_SIZE), os.urandom(KEY_SIZE))

    def __repr__(self) -> str:  # never print key material
        return "KeyBundle(<redacted>)"

    # Cached cipher objects (AESGCM objects are thread-safe and reusable).
    @property
    def _chunk_aead(self) -> AESGCM:
        aead = self.__dict__.get("_chunk_aead_cache")
        if aead is None:
            aead = AESGCM(self.chunk_key)
            object.__setattr__(self, "_chunk_aead_cache", aead)
        return aead

    @property
    def _manifest_aead(self) -> AESGCM:
        aead = self.__dict__.get("_manifest_aead_cache")
        if aead is None:
            aead = AESGCM(self.manifest_key)
            object.__setattr__(self, "_manifest_aead_cache", aead)
        return aead


# --------------------------------------------------------------------------- passphrases


def validate_passphrase(passphrase: str) -> None:
    """Raise ``InvalidPassphrase`` with a user-facing message unless the policy is met.

    Policy: at least 16 characters, printable ASCII only (space to tilde).
    """
    if not isinstance(passphrase, str):
        raise InvalidPassphrase("The passphrase must be text.")
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise InvalidPassphrase(
            f"The passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters long "
            f"(it has {len(passphrase)})."
        )
    bad = sorted({c for c in passphrase if c not in _PRINTABLE})
    if bad:
        raise InvalidPassphrase(
            "The passphrase may contain only printable ASCII characters "
            "(letters, digits, punctuation and spaces); found "
            + ", ".join(repr(c) for c in bad[:5])
            + "."
        )


def generate_passphrase(length: int = 40) -> str:
    """A strong random passphrase of printable ASCII (no spaces), at least 32 characters."""
    length = max(32, length)
    alphabet = string.ascii_letters + string.digits + "!#$%&()*+,-./:;<=>?@[]^_{|}~"
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if (
            any(c.islower() for c in candidate)
            and any(c.isupper() for c in candidate)
            and any(c.isdigit() for c in candidate)
            and any(not c.isalnum() for c in candidate)
        ):
            return candidate


# --------------------------------------------------------------------------- key wrapping


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _derive_kek(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    kdf = Scrypt(salt=salt, length=KEY_SIZE, n=n, r=r, p=p)
    return kdf.derive(passphrase.encode("utf-8"))


def wrap_keys(bundle: KeyBundle, passphrase: str, *, scrypt_params: dict | None = None) -> bytes:
    """Encrypt ``bundle`` under a key derived from ``passphrase``.

    Returns a self-describing JSON document (bytes)::

        {"format": "backup-portal-keys", "version": 1, "kdf": "scrypt",
         "n": 32768, "r": 8, "p": 1, "salt": b64(16 bytes), "nonce": b64(12 bytes),
         "ciphertext": b64(AES-256-GCM(kek, nonce, 96 key bytes, aad=header))}

    The header fields (everything but ciphertext) are bound as associated data.
    """
    validate_passphrase(passphrase)
    params = dict(DEFAULT_SCRYPT)
    if scrypt_params:
        params.update(scrypt_params)
    salt = os.urandom(16)
    nonce = os.urandom(NONCE_SIZE)
    header = {
        "format": WRAP_FORMAT,
        "version": WRAP_VERSION,
        "kdf": "scrypt",
        "n": int(params["n"]),
        "r": int(params["r"]),
        "p": int(params["p"]),
        "salt": _b64(salt),
        "nonce": _b64(nonce),
    }
    kek = _derive_kek(passphrase, salt, header["n"], header["r"], header["p"])
    plaintext = bundle.chunk_key + bundle.id_key + bundle.manifest_key
    ct = AESGCM(kek).encrypt(nonce, plaintext, _wrap_aad(header))
    doc = dict(header, ciphertext=_b64(ct))
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


def _wrap_aad(header: dict) -> bytes:
    fields = {k: header[k] for k in ("format", "version", "kdf", "n", "r", "p", "salt", "nonce")}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")


def unwrap_keys(blob: bytes, passphrase: str) -> KeyBundle:
    """Recover the key bundle; raise ``WrongPassphrase`` if the passphrase is wrong."""
    try:
        doc = json.loads(blob)
        if doc.get("format") != WRAP_FORMAT or doc.get("kdf") != "scrypt":
            raise ValueError("not a key blob")
        if int(doc.get("version", 0)) != WRAP_VERSION:
            raise ValueError(f"unsupported key blob version {doc.get('version')!r}")
        salt = _unb64(doc["salt"])
        nonce = _unb64(doc["nonce"])
        ct = _unb64(doc["ciphertext"])
        n, r, p = int(doc["n"]), int(doc["r"]), int(doc["p"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"The key blob is damaged or not a backup key blob: {exc}") from exc
    kek = _derive_kek(passphrase, salt, n, r, p)
    try:
        plain = AESGCM(kek).decrypt(nonce, ct, _wrap_aad(doc))
    except InvalidTag:
        raise WrongPassphrase() from None
    if len(plain) != 3 * KEY_SIZE:
        raise ValueError("The key blob holds a key bundle of the wrong size.")
    return KeyBundle(plain[:32], plain[32:64], plain[64:96])


def rewrap_keys(blob: bytes, old_passphrase: str, new_passphrase: str) -> bytes:
    """Change the passphrase: same keys (so existing backups stay readable), new salt."""
    validate_passphrase(new_passphrase)
    bundle = unwrap_keys(blob, old_passphrase)
    doc = json.loads(blob)
    params = {"n": doc["n"], "r": doc["r"], "p": doc["p"]}
    return wrap_keys(bundle, new_passphrase, scrypt_params=params)


# --------------------------------------------------------------------------- chunks


def chunk_id(bundle: KeyBundle, data: bytes | memoryview) -> str:
    """Keyed BLAKE3 of the plaintext, 64 hex characters."""
    return blake3.blake3(data, key=bundle.id_key).hexdigest()


class Hasher:
    """Reusable chunk-id function bound to a bundle (avoids attribute lookups in hot loops)."""

    __slots__ = ("_key",)

    def __init__(self, bundle: KeyBundle):
        self._key = bundle.id_key

    def __call__(self, data: bytes | memoryview) -> str:
        return blake3.blake3(data, key=self._key).hexdigest()


_tls_zstd = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_tls_zstd, "c", None)
    if cache is None:
        cache = _tls_zstd.c = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_tls_zstd, "d", None)
    if d is None:
        d = _tls_zstd.d = zstandard.ZstdDecompressor()
    return d


def encrypt_chunk(
    bundle: KeyBundle, cid: str, data: bytes | memoryview, *, level: int = 3
) -> bytes:
    """Compress (when it helps) and encrypt one chunk into a self-contained record.

    Record layout: ``nonce(12) || AES-256-GCM(chunk_key, nonce, flag(1) || payload,
    aad=bytes.fromhex(cid))`` where flag 0 = raw, 1 = zstd frame.
    """
    n = len(data)
    payload = None
    if level > 0 and n >= 64:
        comp = _compressor(level).compress(data)
        # keep compression only when it saves at least ~1/64 of the size
        if len(comp) < n - (n >> 6):
            payload = b"\x01" + comp
    if payload is None:
        payload = b"\x00" + bytes(data)
    nonce = os.urandom(NONCE_SIZE)
    return nonce + bundle._chunk_aead.encrypt(nonce, payload, bytes.fromhex(cid))


def decrypt_chunk(bundle: KeyBundle, cid: str, record: bytes | memoryview) -> bytes:
    """Decrypt, decompress and verify one chunk record; raise ``IntegrityError`` on any damage."""
    if len(record) < NONCE_SIZE + TAG_SIZE + 1:
        raise IntegrityError(f"chunk {cid[:16]}: record too short")
    record = memoryview(record)
    try:
        payload = bundle._chunk_aead.decrypt(
            bytes(record[:NONCE_SIZE]), record[NONCE_SIZE:], bytes.fromhex(cid)
        )
    except InvalidTag:
        raise IntegrityError(f"chunk {cid[:16]}: authentication failed (tampered)") from None
    flag = payload[0]
    if flag == FLAG_RAW:
        data = payload[1:]
    elif flag == FLAG_ZSTD:
        try:
            data = _decompressor().decompress(memoryview(payload)[1:])
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"chunk {cid[:16]}: bad compressed payload: {exc}") from None
    else:
        raise IntegrityError(f"chunk {cid[:16]}: unknown payload flag {flag}")
    if chunk_id(bundle, data) != cid:
        raise IntegrityError(f"chunk {cid[:16]}: content does not match its id")
    return data


# --------------------------------------------------------------------------- metadata blobs


def encrypt_blob(bundle: KeyBundle, data: bytes, associated_data: bytes = b"") -> bytes:
    """Encrypt metadata (manifests, trailers) with the manifest key.

    Layout: ``version(1)=0x01 || nonce(12) || AES-256-GCM(manifest_key, nonce, data, aad)``.
    """
    nonce = os.urandom(NONCE_SIZE)
    return (
        bytes([BLOB_VERSION]) + nonce + bundle._manifest_aead.encrypt(nonce, data, associated_data)
    )


def decrypt_blob(bundle: KeyBundle, blob: bytes, associated_data: bytes = b"") -> bytes:
    if len(blob) < 1 + NONCE_SIZE + TAG_SIZE or blob[0] != BLOB_VERSION:
        raise IntegrityError("metadata blob is damaged or of an unknown version")
    try:
        return bundle._manifest_aead.decrypt(
            blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :], associated_data
        )
    except InvalidTag:
        raise IntegrityError("metadata blob failed authentication") from None
