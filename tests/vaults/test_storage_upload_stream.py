"""Server-side uploads (offline seed import) on both backends: write-once, sizes exact."""

import io

import pytest

from vaults.storage.azure import AzureBlobStore
from vaults.storage.local import LocalBlobStore


@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.services)])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path)
    return AzureBlobStore(request.getfixturevalue("azurite_connection_string"), "2025-11-05")


def test_upload_stream_is_write_once(store):
    container = "vault-upload-stream-test"
    store.create_container(container)
    try:
        body = b"p" * (3 * 1024 * 1024 + 7)
        store.upload_stream(container, "packs/" + "a" * 32, io.BytesIO(body), len(body))
        assert store.blob_size(container, "packs/" + "a" * 32) == len(body)
        store.upload_stream(container, "packs/" + "a" * 32, io.BytesIO(b"other"), 5)
        assert store.blob_size(container, "packs/" + "a" * 32) == len(body)
    finally:
        store.delete_container(container)
