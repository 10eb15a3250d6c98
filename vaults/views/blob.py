"""The portal's blob endpoint for the local backend: Azure-like signed blob URLs.

``/blob/<container>/<blob>?sp=cw|r&se=<unix expiry>&sig=<hex>`` (see
``vaults.storage.local``). The signature is the only authority: no session, no CSRF.
Answers mirror Azure Blob Storage for the one agent code path:

- ``PUT`` (``cw``): ``x-ms-blob-type: BlockBlob`` required (400), ``Content-Length``
  required (411), ``If-None-Match: *`` refuses an existing blob (409 BlobAlreadyExists),
  missing container 404 ContainerNotFound, else 201. The body streams to a temporary
  file in the blob's folder (1 MiB reads, never ``request.body``) and is renamed into place.
- ``GET`` / ``HEAD`` (``r``): 200 with the bytes, ``Range: bytes=a-b`` (or
  ``x-ms-range``) 206 with ``Content-Range``, a range past the end 416, missing 404.
- A bad, forged or expired signature 403 AuthenticationFailed; a valid one of the
  wrong kind (also any ``DELETE``) 403 AuthorizationPermissionMismatch; other methods 405.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from email.utils import formatdate
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from vaults.storage import get_blob_store
from vaults.storage.base import validate_blob_name, validate_container_name
from vaults.storage.local import (
    PERMISSION_READ,
    PERMISSION_WRITE,
    BlobExists,
    LocalBlobStore,
    SignatureError,
)

log = logging.getLogger(__name__)

#: Azure's limit for a single Put Blob
MAX_PUT_BYTES = 5000 * 1024 * 1024
CHUNK = 1024 * 1024
_RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
_NO_PERMISSION = "D"  # never granted: DELETE always answers AuthorizationPermissionMismatch


def _error(request, status: int, code: str, message: str, **headers) -> HttpResponse:
    body = (
        ""
        if request.method == "HEAD"
        else '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
    )
    response = HttpResponse(body, status=status, content_type="application/xml")
    response["x-ms-error-code"] = code
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _etag(st: os.stat_result) -> str:
    return f'"0x{st.st_mtime_ns:X}{st.st_size:X}"'


def _blob_headers(response: HttpResponse, st: os.stat_result) -> HttpResponse:
    response["ETag"] = _etag(st)
    response["Last-Modified"] = formatdate(st.st_mtime, usegmt=True)
    response["Accept-Ranges"] = "bytes"
    response["x-ms-blob-type"] = "BlockBlob"
    response["x-ms-version"] = settings.AZURE_STORAGE_API_VERSION
    response["Cache-Control"] = "private, no-store"
    return response


@csrf_exempt
def blob(request, container: str, blob: str):
    if settings.AZURE_STORAGE_CONNECTION_STRING:
        return _error(request, 404, "ResourceNotFound", "blobs are stored in Azure, not here")
    store = get_blob_store()
    if not isinstance(store, LocalBlobStore):  # pragma: no cover - configuration mismatch
        return _error(request, 404, "ResourceNotFound", "no local blob store")
    method = request.method
    if method not in ("GET", "HEAD", "PUT", "DELETE"):
        response = _error(
            request, 405, "UnsupportedHttpVerb", f"{method} is not supported on a blob URL"
        )
        response["Allow"] = "GET, HEAD, PUT"
        return response
    try:
        validate_container_name(container)
        validate_blob_name(blob)
    except ValueError as exc:
        return _error(request, 400, "InvalidResourceName", str(exc))
    needed = {"PUT": PERMISSION_WRITE, "DELETE": _NO_PERMISSION}.get(method, PERMISSION_READ)
    try:
        store.verify(container, blob, request.GET, needed)
    except SignatureError as exc:
        return _error(request, 403, exc.code, f"{exc.code}: {exc.message}")
    if method == "PUT":
        return _put(request, store, container, blob)
    return _get(request, store, container, blob)


def _put(request, store: LocalBlobStore, container: str, blob: str):
    blob_type = request.headers.get("x-ms-blob-type")
    if blob_type is None:
        return _error(request, 400, "MissingRequiredHeader", "x-ms-blob-type is required")
    if blob_type != "BlockBlob":
        return _error(request, 400, "InvalidHeaderValue", "x-ms-blob-type must be BlockBlob here")
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    if not raw_length.isascii() or not raw_length.isdigit():
        return _error(request, 411, "MissingContentLengthHeader", "Content-Length is required")
    length = int(raw_length)
    if length > MAX_PUT_BYTES:
        return _error(request, 413, "RequestBodyTooLarge", "a single PUT is at most 5000 MiB")
    if_none_match = request.headers.get("If-None-Match", "").strip() == "*"
    try:
        st = store.write(container, blob, request, length, if_none_match=if_none_match)
    except BlobExists:
        return _error(request, 409, "BlobAlreadyExists", "The specified blob already exists.")
    except FileNotFoundError:
        return _error(request, 404, "ContainerNotFound", "The specified container does not exist.")
    except ValueError as exc:
        return _error(request, 400, "IncompleteBody", str(exc))
    except OSError as exc:
        log.exception("local blob store: writing %s/%s failed", container, blob)
        return _error(request, 500, "InternalError", f"cannot store the blob: {exc.strerror}")
    response = HttpResponse(status=201)
    response["ETag"] = _etag(st)
    response["Last-Modified"] = formatdate(st.st_mtime, usegmt=True)
    response["x-ms-version"] = settings.AZURE_STORAGE_API_VERSION
    response["x-ms-request-server-encrypted"] = "false"
    return response


def _parse_range(header: str, size: int):
    """(start, end) inclusive, "invalid" for an unsatisfiable range, None to send it all."""
    match = _RANGE_RE.match(header.strip())
    if not match:
        return None  # absent, malformed or several ranges: the whole blob, like Azure
    first, last = match.groups()
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "invalid"
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return "invalid"
    return start, min(end, size - 1)


def _read_range(handle, start: int, length: int):
    with handle:
        handle.seek(start)
        while length > 0:
            data = handle.read(min(CHUNK, length))
            if not data:
                break
            length -= len(data)
            yield data


async def _aread_range(handle, start: int, length: int):
    """The ASGI form: Django would load a sync iterator whole into memory under daphne."""
    try:
        await asyncio.to_thread(handle.seek, start)
        while length > 0:
            data = await asyncio.to_thread(handle.read, min(CHUNK, length))
            if not data:
                break
            length -= len(data)
            yield data
    finally:
        handle.close()


def _stream(request, handle, start: int, length: int, status: int) -> StreamingHttpResponse:
    if isinstance(request, ASGIRequest):
        content = _aread_range(handle, start, length)
    elif status == 200:
        # WSGI: the server may hand the open file to sendfile (wsgi.file_wrapper)
        response = FileResponse(handle, content_type="application/octet-stream")
        response.block_size = CHUNK
        return response
    else:
        content = _read_range(handle, start, length)
    response = StreamingHttpResponse(
        content, status=status, content_type="application/octet-stream"
    )
    response["Content-Length"] = str(length)
    return response


def _get(request, store: LocalBlobStore, container: str, blob: str):
    try:
        handle = open(store.blob_path(container, blob), "rb")  # noqa: SIM115 - closed by the response
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError):
        if not store.container_exists(container):
            return _error(
                request, 404, "ContainerNotFound", "The specified container does not exist."
            )
        return _error(request, 404, "BlobNotFound", "The specified blob does not exist.")
    st = os.fstat(handle.fileno())
    size = st.st_size
    if request.method == "HEAD":
        handle.close()
        response = HttpResponse(content_type="application/octet-stream")
        response["Content-Length"] = str(size)
        return _blob_headers(response, st)
    header = request.headers.get("x-ms-range") or request.headers.get("Range") or ""
    wanted = _parse_range(header, size) if header else None
    if wanted == "invalid":
        handle.close()
        return _error(
            request,
            416,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
            Content_Range=f"bytes */{size}",
        )
    if wanted is None:
        return _blob_headers(_stream(request, handle, 0, size, 200), st)
    start, end = wanted
    response = _stream(request, handle, start, end - start + 1, 206)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return _blob_headers(response, st)


# included from vaults/urls.py as "blob/": /blob/<container>/<blob>
urlpatterns = [path("<str:container>/<path:blob>", blob, name="blob")]
