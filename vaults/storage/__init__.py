"""Vault blob storage: ``get_blob_store()`` picks the backend from settings.

Azure Blob Storage when ``AZURE_STORAGE_CONNECTION_STRING`` is set (Azurite in tests),
else the local folder ``BLOB_ROOT`` served by the portal's ``/blob/`` endpoint.
"""

from __future__ import annotations

import threading

from django.conf import settings

from .base import (
    DEFAULT_DOWNLOAD_TTL,
    DEFAULT_UPLOAD_TTL,
    BlobStore,
    StorageError,
    validate_blob_name,
    validate_container_name,
)

__all__ = [
    "BlobStore",
    "StorageError",
    "DEFAULT_UPLOAD_TTL",
    "DEFAULT_DOWNLOAD_TTL",
    "get_blob_store",
    "validate_blob_name",
    "validate_container_name",
]

_lock = threading.Lock()
_cache: dict[tuple, BlobStore] = {}


def _config() -> tuple:
    connection_string = getattr(settings, "AZURE_STORAGE_CONNECTION_STRING", None)
    if connection_string:
        return ("azure", connection_string, getattr(settings, "AZURE_STORAGE_API_VERSION", None))
    return ("local", str(settings.BLOB_ROOT))


def get_blob_store() -> BlobStore:
    """The configured backend; one instance per distinct settings value."""
    key = _config()
    store = _cache.get(key)
    if store is None:
        with _lock:
            store = _cache.get(key)
            if store is None:
                if key[0] == "azure":
                    from .azure import AzureBlobStore

                    store = AzureBlobStore(key[1], api_version=key[2])
                else:
                    from .local import LocalBlobStore

                    store = LocalBlobStore(key[1])
                _cache[key] = store
    return store
