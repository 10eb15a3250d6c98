"""Local-folder backend (the embedded default): files under BLOB_ROOT/<container>/<blob>.

Blobs are served by the portal itself (``vaults.views.blob``) through signed, expiring
URLs that behave like Azure blob SAS URLs for the one agent code path::

    {PORTAL_URL}/blob/<container>/<blob>?sp=cw|r&se=<unix expiry>&sig=<hex HMAC-SHA256>

The signature covers container, blob, permission and expiry, with a key derived from
SECRET_KEY, so a URL grants exactly one operation class on exactly one blob until it
expires. Uploads are written to a temporary file in the blob's folder and renamed into
place, so a reader never sees a partial blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from .base import (
    DEFAULT_DOWNLOAD_TTL,
    DEFAULT_UPLOAD_TTL,
    StorageError,
    validate_blob_name,
    validate_container_name,
    validate_prefix,
)

PERMISSION_WRITE = "cw"
PERMISSION_READ = "r"
PERMISSIONS = (PERMISSION_WRITE, PERMISSION_READ)
#: temporary upload files carry a "~", which no valid blob name contains
_TEMP_MARK = "~upload-"
_COPY_CHUNK = 1024 * 1024
_EXPIRY_RE = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")


def _now() -> float:
    """The clock URLs are signed and checked against (tests may replace it)."""
    return time.time()


def _signing_key(secret_key: str | None = None) -> bytes:
    secret = (secret_key if secret_key is not None else settings.SECRET_KEY).encode()
    return hmac.new(secret, b"blob-url", hashlib.sha256).digest()


def sign(container: str, blob: str, permission: str, expiry: int, secret_key=None) -> str:
    message = f"{container}\n{blob}\n{permission}\n{int(expiry)}".encode()
    return hmac.new(_signing_key(secret_key), message, hashlib.sha256).hexdigest()


class SignatureError(Exception):
    """A local blob URL is not valid (``code`` is the Azure-style error code)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def verify(
    container: str, blob: str, query: dict, needed: str, secret_key: str | None = None
) -> None:
    """Check a signed URL's query (``sp``, ``se``, ``sig``) for operation ``needed``.

    Raises ``SignatureError``: AuthenticationFailed for a missing, malformed, forged or
    expired signature, AuthorizationPermissionMismatch for a valid one of the wrong kind.
    """
    permission, expiry, signature = query.get("sp"), query.get("se"), query.get("sig")
    if not permission or not expiry or not signature:
        raise SignatureError("AuthenticationFailed", "signature missing (sp, se and sig needed)")
    if (
        permission not in PERMISSIONS
        or not _EXPIRY_RE.match(expiry)
        or not _SIGNATURE_RE.match(signature)
    ):
        raise SignatureError("AuthenticationFailed", "signature malformed")
    expected = sign(container, blob, permission, int(expiry), secret_key)
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("AuthenticationFailed", "signature does not match")
    if _now() > int(expiry):
        raise SignatureError("AuthenticationFailed", "signature expired")
    if permission != needed:
        raise SignatureError(
            "AuthorizationPermissionMismatch",
            "this URL is not authorized to perform this operation with its permission",
        )


class BlobExists(Exception):
    """``write`` with ``if_none_match``: the blob is already there."""


class LocalBlobStore:
    """``BlobStore`` on a local folder; URLs point at the portal's ``/blob/`` endpoint.

    ``base_url`` and ``secret_key`` default to settings.PORTAL_URL and settings.SECRET_KEY,
    read when a URL is made (so they follow the running settings).
    """

    def __init__(
        self, root: str | os.PathLike, base_url: str | None = None, secret_key: str | None = None
    ):
        self.root = Path(root).resolve()
        self._base_url = base_url
        self._secret_key = secret_key

    def __repr__(self) -> str:
        return f"<LocalBlobStore {self.root}>"

    # -- paths ----------------------------------------------------------------------------

    def container_path(self, container: str) -> Path:
        return self.root / validate_container_name(container)

    def blob_path(self, container: str, blob: str) -> Path:
        path = self.container_path(container) / validate_blob_name(blob)
        # validated names cannot escape, but a symlinked folder inside the root could
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"blob {blob!r} resolves outside the blob root")
        return path

    # -- containers -----------------------------------------------------------------------

    def create_container(self, container: str) -> None:
        path = self.container_path(container)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"local storage: cannot create container {path}: {exc}") from None

    def delete_container(self, container: str) -> None:
        path = self.container_path(container)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"local storage: cannot delete container {path}: {exc}") from None

    def container_exists(self, container: str) -> bool:
        return self.container_path(container).is_dir()

    # -- URLs -----------------------------------------------------------------------------

    def _url(self, container: str, blob: str, permission: str, ttl: timedelta) -> str:
        validate_container_name(container)
        validate_blob_name(blob)
        expiry = int(_now() + ttl.total_seconds())
        signature = sign(container, blob, permission, expiry, self._secret_key)
        base = (self._base_url if self._base_url is not None else settings.PORTAL_URL).rstrip("/")
        return f"{base}/blob/{container}/{blob}?sp={permission}&se={expiry}&sig={signature}"

    def upload_url(self, container: str, blob: str, ttl: timedelta = DEFAULT_UPLOAD_TTL) -> str:
        return self._url(container, blob, PERMISSION_WRITE, ttl)

    def download_url(self, container: str, blob: str, ttl: timedelta = DEFAULT_DOWNLOAD_TTL) -> str:
        return self._url(container, blob, PERMISSION_READ, ttl)

    def verify(self, container: str, blob: str, query: dict, needed: str) -> None:
        verify(container, blob, query, needed, self._secret_key)

    # -- blobs ----------------------------------------------------------------------------

    def blob_size(self, container: str, blob: str) -> int | None:
        try:
            st = self.blob_path(container, blob).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"local storage: cannot read {container}/{blob}: {exc}") from None
        return st.st_size if _is_file(st) else None

    def delete_blob(self, container: str, blob: str) -> None:
        path = self.blob_path(container, blob)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass
        except IsADirectoryError:
            pass  # a "folder" of longer names, not a blob
        except OSError as exc:
            raise StorageError(f"local storage: cannot delete {container}/{blob}: {exc}") from None

    def list_blobs(self, container: str, prefix: str = "") -> Iterator[tuple[str, int]]:
        validate_prefix(prefix)  # here, not at the first next()
        return self._list(self.container_path(container), prefix)

    def _list(self, top: Path, prefix: str) -> Iterator[tuple[str, int]]:
        # start at the deepest folder the prefix names; filter the rest by name
        folder, _, _ = prefix.rpartition("/")
        start = top / folder if folder else top
        base = f"{folder}/" if folder else ""
        try:
            for name, size in _walk(start, base):
                if name.startswith(prefix):
                    yield name, size
        except OSError as exc:
            raise StorageError(f"local storage: cannot list container {top}: {exc}") from None

    def upload_stream(self, container: str, blob: str, stream: BinaryIO, length: int) -> None:
        with contextlib.suppress(BlobExists):
            self.write(container, blob, stream, length, if_none_match=True)

    def container_bytes(self, container: str) -> int:
        return sum(size for _name, size in self.list_blobs(container))

    def write(
        self,
        container: str,
        blob: str,
        stream: BinaryIO,
        length: int,
        *,
        if_none_match: bool = False,
    ) -> os.stat_result:
        """Store ``length`` bytes read from ``stream`` as the blob, atomically.

        Raises FileNotFoundError when the container is missing, BlobExists when
        ``if_none_match`` and the blob exists, ValueError when the stream ends short.
        """
        container_dir = self.container_path(container)
        path = self.blob_path(container, blob)
        if not container_dir.is_dir():
            raise FileNotFoundError(container_dir)
        if if_none_match and path.exists():
            raise BlobExists(blob)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}{_TEMP_MARK}{secrets.token_hex(8)}")
        try:
            received = 0
            with open(temp, "xb") as out:
                while received < length:
                    data = stream.read(min(_COPY_CHUNK, length - received))
                    if not data:
                        break
                    out.write(data)
                    received += len(data)
                if received != length:
                    raise ValueError(f"body ended after {received} of {length} bytes")
                out.flush()
                os.fsync(out.fileno())
            if if_none_match:
                # link() refuses an existing target: two racing uploads cannot both win
                try:
                    os.link(temp, path)
                except FileExistsError:
                    raise BlobExists(blob) from None
                except OSError:  # a file system without hard links
                    if path.exists():
                        raise BlobExists(blob) from None
                    os.replace(temp, path)
            else:
                os.replace(temp, path)
            _fsync_dir(path.parent)
            return path.stat()
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def _is_file(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _walk(folder: Path, base: str) -> Iterator[tuple[str, int]]:
    """(name, size) of the files below ``folder`` in blob-name order, lazily.

    Sorting each folder's entries by ``name + "/"`` for sub-folders yields the same order
    as sorting the full names, which is how Azure lists.
    """
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except (FileNotFoundError, NotADirectoryError):
        return
    keyed = []
    for entry in entries:
        if _TEMP_MARK in entry.name:
            continue
        if entry.is_dir(follow_symlinks=False):
            keyed.append((entry.name + "/", entry))
        elif entry.is_file(follow_symlinks=False):
            keyed.append((entry.name, entry))
    for key, entry in sorted(keyed, key=lambda item: item[0]):
        if key.endswith("/"):
            yield from _walk(Path(entry.path), base + key)
        else:
            yield base + entry.name, entry.stat(follow_symlinks=False).st_size
