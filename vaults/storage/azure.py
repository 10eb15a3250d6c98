"""Azure Blob Storage backend (Azurite in tests): a container per vault, blob SAS URLs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from .base import (
    DEFAULT_DOWNLOAD_TTL,
    DEFAULT_UPLOAD_TTL,
    StorageError,
    validate_blob_name,
    validate_container_name,
    validate_prefix,
)

# The SDK logs every request and response at INFO; keep that out of the portal's INFO log
# unless the deployment's LOGGING sets a level for this logger itself.
_http_log = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
if _http_log.level == logging.NOTSET:
    _http_log.setLevel(logging.WARNING)

#: a SAS starts this long before "now", so a storage clock slightly behind ours accepts it
CLOCK_SKEW = timedelta(minutes=1)


def _now() -> datetime:
    return datetime.now(UTC)


class AzureBlobStore:
    """``BlobStore`` on an Azure storage account given by a connection string."""

    def __init__(self, connection_string: str, api_version: str | None = None, **client_options):
        """``client_options`` go to ``BlobServiceClient`` (timeouts, ``retry_total``...)."""
        options = {"connection_timeout": 10, "read_timeout": 120, "retry_total": 2}
        options.update(client_options)
        if api_version:
            options["api_version"] = api_version
        try:
            self._service = BlobServiceClient.from_connection_string(connection_string, **options)
        except (ValueError, AzureError) as exc:
            raise StorageError(f"Azure storage: bad connection string ({exc})") from None
        self.api_version = api_version
        self.account_name = self._service.account_name
        credential = self._service.credential
        self._account_key = getattr(credential, "account_key", None)
        if not self.account_name or not self._account_key:
            raise StorageError(
                "Azure storage: the connection string needs AccountName and AccountKey "
                "(blob SAS URLs are signed with the account key)"
            )

    def __repr__(self) -> str:
        return f"<AzureBlobStore {self._service.url}>"

    # -- errors ---------------------------------------------------------------------------

    def _fail(self, action: str, exc: Exception) -> StorageError:
        if isinstance(exc, ClientAuthenticationError):
            detail = "the account key was refused"
        elif isinstance(exc, ServiceRequestError):
            detail = f"cannot reach {self._service.url}"
        elif isinstance(exc, HttpResponseError):
            code = getattr(exc, "error_code", None) or ""
            status = getattr(exc, "status_code", None)
            if code == "ContainerBeingDeleted":
                detail = "the container is still being deleted; try again in a minute"
            else:
                message = (exc.message or "").splitlines()[0] if exc.message else ""
                detail = f"HTTP {status} {code}: {message}".strip()
        else:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StorageError(f"Azure storage: {action} failed: {detail}")

    # -- containers -----------------------------------------------------------------------

    def create_container(self, container: str) -> None:
        validate_container_name(container)
        try:
            self._service.create_container(container)
        except ResourceExistsError as exc:
            if getattr(exc, "error_code", None) == "ContainerBeingDeleted":
                raise self._fail(f"creating container {container!r}", exc) from None
        except AzureError as exc:
            raise self._fail(f"creating container {container!r}", exc) from None

    def delete_container(self, container: str) -> None:
        validate_container_name(container)
        try:
            self._service.delete_container(container)
        except ResourceNotFoundError:
            pass
        except AzureError as exc:
            raise self._fail(f"deleting container {container!r}", exc) from None

    def container_exists(self, container: str) -> bool:
        validate_container_name(container)
        try:
            return self._service.get_container_client(container).exists()
        except AzureError as exc:
            raise self._fail(f"checking container {container!r}", exc) from None

    # -- URLs -----------------------------------------------------------------------------

    def _sas_url(
        self, container: str, blob: str, permission: BlobSasPermissions, ttl: timedelta
    ) -> str:
        validate_container_name(container)
        validate_blob_name(blob)
        now = _now()
        expiry = now + ttl
        start = min(now, expiry) - CLOCK_SKEW
        token = generate_blob_sas(
            account_name=self.account_name,
            container_name=container,
            blob_name=blob,
            account_key=self._account_key,
            permission=permission,
            expiry=expiry,
            start=start,
        )
        url = self._service.get_blob_client(container, blob).url
        return f"{url}?{token}"

    def upload_url(self, container: str, blob: str, ttl: timedelta = DEFAULT_UPLOAD_TTL) -> str:
        return self._sas_url(container, blob, BlobSasPermissions(create=True, write=True), ttl)

    def download_url(self, container: str, blob: str, ttl: timedelta = DEFAULT_DOWNLOAD_TTL) -> str:
        return self._sas_url(container, blob, BlobSasPermissions(read=True), ttl)

    # -- blobs ----------------------------------------------------------------------------

    def blob_size(self, container: str, blob: str) -> int | None:
        validate_container_name(container)
        validate_blob_name(blob)
        try:
            return self._service.get_blob_client(container, blob).get_blob_properties().size
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._fail(f"reading the size of {container}/{blob}", exc) from None

    def upload_stream(self, container: str, blob: str, stream: BinaryIO, length: int) -> None:
        validate_container_name(container)
        validate_blob_name(blob)
        try:
            self._service.get_blob_client(container, blob).upload_blob(
                stream, length=length, overwrite=False
            )
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise self._fail(f"uploading {container}/{blob}", exc) from None

    def delete_blob(self, container: str, blob: str) -> None:
        validate_container_name(container)
        validate_blob_name(blob)
        try:
            self._service.get_blob_client(container, blob).delete_blob()
        except ResourceNotFoundError:
            pass
        except AzureError as exc:
            raise self._fail(f"deleting {container}/{blob}", exc) from None

    def list_blobs(self, container: str, prefix: str = "") -> Iterator[tuple[str, int]]:
        validate_container_name(container)
        validate_prefix(prefix)  # here, not at the first next()
        return self._list(container, prefix)

    def _list(self, container: str, prefix: str) -> Iterator[tuple[str, int]]:
        client = self._service.get_container_client(container)
        try:
            for item in client.list_blobs(name_starts_with=prefix or None):
                yield item.name, item.size
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise self._fail(f"listing container {container!r}", exc) from None

    def container_bytes(self, container: str) -> int:
        return sum(size for _name, size in self.list_blobs(container))
