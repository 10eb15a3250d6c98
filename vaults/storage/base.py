"""The vault blob store: one interface, an Azure and a local-folder backend.

Every vault owns one container. The agent never talks to this interface: it receives
short-lived URLs (``upload_url`` / ``download_url``) and speaks plain HTTP to them, the
same way for both backends::

    PUT <upload url>    x-ms-blob-type: BlockBlob, x-ms-version: 2025-11-05,
                        If-None-Match: *  (write-once: an existing blob answers 409)
                        -> 201
    GET <download url>  optionally Range: bytes=a-b -> 200, or 206 with the exact bytes
    HEAD <download url> -> 200 with Content-Length

An upload URL may create and write that one blob only (no read, list or delete); a
download URL may only read it (GET, HEAD). Wrong permission, a bad signature or an
expired URL answer 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = [
    "BlobStore",
    "StorageError",
    "DEFAULT_UPLOAD_TTL",
    "DEFAULT_DOWNLOAD_TTL",
    "MAX_BLOB_NAME_LENGTH",
    "validate_container_name",
    "validate_blob_name",
    "validate_prefix",
]

#: long enough for one pack upload on a slow (512 Kbps) line, short enough to be useless later
DEFAULT_UPLOAD_TTL = timedelta(hours=2)
DEFAULT_DOWNLOAD_TTL = timedelta(hours=2)
MAX_BLOB_NAME_LENGTH = 512

_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_BLOB_RE = re.compile(r"^[A-Za-z0-9._/-]+$")


class StorageError(Exception):
    """The storage backend failed or refused an operation (the message says which and why)."""


def validate_container_name(container: str) -> str:
    """Azure's rules: 3-63 characters, lowercase letters, digits and single inner hyphens."""
    if not isinstance(container, str) or not _CONTAINER_RE.match(container):
        raise ValueError(
            f"invalid container name {container!r}: use 3-63 lowercase letters, digits and "
            "hyphens, starting and ending with a letter or digit, no double hyphens"
        )
    return container


def validate_blob_name(blob: str) -> str:
    """``packs/3f2a...`` style: [A-Za-z0-9._/-], at most 512 characters, no empty,
    ``.`` or ``..`` path segment, no leading or trailing slash."""
    if not isinstance(blob, str) or not blob or len(blob) > MAX_BLOB_NAME_LENGTH:
        raise ValueError(f"invalid blob name {blob!r}: 1-{MAX_BLOB_NAME_LENGTH} characters")
    if not _BLOB_RE.match(blob):
        raise ValueError(f"invalid blob name {blob!r}: only A-Z a-z 0-9 . _ / - are allowed")
    if any(part in ("", ".", "..") for part in blob.split("/")):
        raise ValueError(
            f"invalid blob name {blob!r}: no leading or trailing '/', no '//', '.' or '..'"
        )
    return blob


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or the start of a valid blob name."""
    if prefix == "":
        return prefix
    if not isinstance(prefix, str) or len(prefix) > MAX_BLOB_NAME_LENGTH:
        raise ValueError(f"invalid prefix {prefix!r}")
    if not _BLOB_RE.match(prefix):
        raise ValueError(f"invalid prefix {prefix!r}: only A-Z a-z 0-9 . _ / - are allowed")
    parts = prefix.split("/")
    # the last segment may be partial ("packs/3f"), or empty after a trailing slash
    if prefix.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] == "..":
        raise ValueError(f"invalid prefix {prefix!r}: no leading '/', '//', '.' or '..' segment")
    return prefix


@runtime_checkable
class BlobStore(Protocol):
    """What the portal needs from blob storage; see the module docstring for the URLs."""

    def create_container(self, container: str) -> None:
        """Create the container; nothing happens when it exists."""

    def delete_container(self, container: str) -> None:
        """Delete the container and every blob in it; nothing happens when it is missing."""

    def container_exists(self, container: str) -> bool: ...

    def upload_url(self, container: str, blob: str, ttl: timedelta = DEFAULT_UPLOAD_TTL) -> str:
        """A URL that may create and write this one blob until now + ttl (no read/list/delete)."""

    def download_url(self, container: str, blob: str, ttl: timedelta = DEFAULT_DOWNLOAD_TTL) -> str:
        """A URL that may read this one blob (GET, Range GET, HEAD) until now + ttl."""

    def upload_stream(self, container: str, blob: str, stream: BinaryIO, length: int) -> None:
        """Server-side write-once upload (offline seed import); an existing blob is kept."""
        ...

    def blob_size(self, container: str, blob: str) -> int | None:
        """The size in bytes, or None when the blob (or its container) is missing."""

    def delete_blob(self, container: str, blob: str) -> None:
        """Delete the blob; nothing happens when it (or its container) is missing."""

    def list_blobs(self, container: str, prefix: str = "") -> Iterator[tuple[str, int]]:
        """(name, size) of the blobs whose name starts with prefix, in name order;
        nothing for a missing container."""

    def container_bytes(self, container: str) -> int:
        """The total size of the container's blobs (0 for a missing container)."""
