"""HTTP clients: the portal's agent API (``/api/agent/v1/``) and blob storage URLs.

Both retry with exponential backoff (and jitter) on connection errors, 429 (honouring
``Retry-After``) and 5xx answers. A request that is not safe to repeat (registration,
opening a job, committing a point) is retried only when it surely never reached the
server (connection refused, proxy or gateway errors 502/503/504).

Failures become ``errors.AgentError`` subclasses with one clear message:
``PortalUnreachable`` (exit 6), ``Unauthorized`` (exit 3), ``PortalRefused`` with the
portal's own explanation (exit 10), ``StorageFailure`` (exit 7).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx

from . import __version__
from .errors import (
    PortalNotFound,
    PortalRefused,
    PortalUnreachable,
    StorageFailure,
    Unauthorized,
)

__all__ = [
    "PortalClient",
    "BlobClient",
    "BlobNotFound",
    "BlobUrlExpired",
    "BlobExists",
    "flatten_errors",
    "redact_url",
    "API_PREFIX",
    "STORAGE_API_VERSION",
]

log = logging.getLogger("backup_agent.api")

API_PREFIX = "/api/agent/v1/"
STORAGE_API_VERSION = "2025-11-05"
USER_AGENT = f"backup-agent/{__version__}"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: answers that mean the request was not processed (safe to repeat anything)
NOT_PROCESSED = frozenset({429, 502, 503, 504})
BLOCK = 256 * 1024
#: a 429 asking to wait longer than this is reported instead of waited for
MAX_RATE_LIMIT_WAIT = 300.0


def redact_url(url: str) -> str:
    """The URL without query string or password (SAS signatures, proxy credentials)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def flatten_errors(body) -> str:
    """DRF error bodies ({"detail": ..}, {"field": [..]}, [..]) as one sentence list."""
    out: list[str] = []

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif value is not None and str(value).strip():
            out.append(str(value).strip())

    walk(body)
    return " ".join(dict.fromkeys(out))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


class _Retrying:
    """Backoff schedule shared by both clients."""

    def __init__(
        self,
        retries: int,
        backoff: float,
        max_backoff: float,
        sleep: Callable[[float], None],
    ):
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep

    def delay(self, attempt: int, hint: float | None = None) -> float:
        base = min(self.max_backoff, self.backoff * (2**attempt))
        wait = base * (0.75 + random.random() * 0.5)
        if hint is not None:  # Retry-After: wait what the server asks (within reason)
            wait = max(wait, min(hint, MAX_RATE_LIMIT_WAIT))
        return wait


def _is_unsent(exc: httpx.TransportError) -> bool:
    """True when the request surely never reached the server."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError)


def _client(proxy: str | None, timeout: float, transport=None, **kwargs) -> httpx.Client:
    return httpx.Client(
        proxy=proxy or None,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        **kwargs,
    )


class PortalClient:
    """JSON calls to the agent API with the machine token."""

    def __init__(
        self,
        portal_url: str,
        token: str | None = None,
        *,
        proxy: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.portal_url = portal_url.rstrip("/")
        self.base = self.portal_url + API_PREFIX
        self.token = token
        self.proxy = proxy
        self.retry = _Retrying(retries, backoff, max_backoff, sleep)
        self.http = _client(proxy, timeout, transport)
        self.last_date: float | None = None  # the portal's Date header (clock skew check)
        self.last_date_local: float | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PortalClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        json=None,
        params: dict | None = None,
        headers: dict | None = None,
        idempotent: bool = True,
        timeout: float | None = None,
        retries: int | None = None,
        ok: tuple[int, ...] = (200, 201, 204, 304),
        auth: bool = True,
    ) -> httpx.Response:
        """Send with retries; return the response when its status is in ``ok``, else raise."""
        url = self._url(path)
        hdrs = dict(headers or {})
        if auth and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        tries = self.retry.retries if retries is None else max(0, retries)
        extra = {} if timeout is None else {"timeout": timeout}
        last: str = ""
        for attempt in range(tries + 1):
            hint = None
            try:
                response = self.http.request(
                    method, url, json=json, params=params, headers=hdrs, **extra
                )
            except httpx.TransportError as exc:
                if not idempotent and not _is_unsent(exc):
                    raise PortalUnreachable(
                        f"The connection to the portal at {self.portal_url} broke during "
                        f"{method} {path} ({type(exc).__name__}: {exc}); the outcome is unknown."
                    ) from exc
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                self._note_date(response)
                status = response.status_code
                retryable = status in (NOT_PROCESSED if not idempotent else RETRY_STATUSES)
                if not retryable:
                    if status in ok:
                        return response
                    raise self._refusal(method, path, response)
                last = f"HTTP {status}"
                hint = _retry_after(response)
                if status == 429:
                    last = "HTTP 429 (too many requests)"
                    if hint is not None and hint > MAX_RATE_LIMIT_WAIT:
                        raise PortalRefused(
                            "The portal is limiting requests from this machine"
                            + (f": {_detail(response)}" if _detail(response) else "")
                            + f" Try again in {_minutes(hint)}.",
                            status,
                        )
            if attempt < tries:
                wait = self.retry.delay(attempt, hint)
                log.warning("%s %s failed (%s); retrying in %.1f s", method, path, last, wait)
                self.retry.sleep(wait)
        raise PortalUnreachable(
            f"The portal at {self.portal_url} could not be reached ({last}) after "
            f"{tries + 1} attempt(s). Check the network connection, the proxy setting and "
            f"that the portal is running."
        )

    def _note_date(self, response: httpx.Response) -> None:
        _note_date(self, response)

    def _refusal(self, method: str, path: str, response: httpx.Response) -> PortalRefused:
        try:
            body = response.json()
        except ValueError:
            body = None
        message = flatten_errors(body) if body is not None else ""
        status = response.status_code
        if status in (401, 403):
            return Unauthorized(
                "The portal refused this machine's token"
                + (f": {message}" if message else ".")
                + " If the machine was unregistered or registered again elsewhere, register it"
                " with a new vault credentials file (backup-agent register --reregister).",
                status,
                body,
            )
        if status == 404:
            if body is None:
                return PortalNotFound(
                    f"The portal at {self.portal_url} does not offer {method} {API_PREFIX}"
                    f"{path.lstrip('/')} (HTTP 404). Is the portal up to date?",
                    status,
                    body,
                )
            return PortalNotFound(message or "Not found.", status, body)
        return PortalRefused(
            message or f"The portal refused {method} {path} (HTTP {status}).", status, body
        )

    # ------------------------------------------------------------------ helpers
    def get(self, path: str, **kwargs) -> dict:
        return _json(self.request("GET", path, **kwargs))

    def post(self, path: str, body: dict | None = None, **kwargs) -> dict:
        return _json(self.request("POST", path, json=body or {}, **kwargs))

    def put(self, path: str, body: dict | None = None, **kwargs) -> dict:
        return _json(self.request("PUT", path, json=body or {}, **kwargs))

    def patch(self, path: str, body: dict | None = None, **kwargs) -> dict:
        return _json(self.request("PATCH", path, json=body or {}, **kwargs))

    def clock_skew(self) -> float | None:
        """Seconds this machine's clock is ahead of the portal's (from the last answer)."""
        return clock_skew(self)


def _detail(response: httpx.Response) -> str:
    try:
        return flatten_errors(response.json())
    except ValueError:
        return ""


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} seconds"
    return f"{round(seconds / 60)} minutes"


def _note_date(holder, response: httpx.Response) -> None:
    value = response.headers.get("Date")
    if value:
        try:
            holder.last_date = email.utils.parsedate_to_datetime(value).timestamp()
            holder.last_date_local = time.time()
        except (TypeError, ValueError):
            pass


def clock_skew(holder) -> float | None:
    """Seconds the local clock is ahead of the server's, from the last Date header seen."""
    if getattr(holder, "last_date", None) is None or holder.last_date_local is None:
        return None
    return holder.last_date_local - holder.last_date


def _json(response: httpx.Response) -> dict:
    if response.status_code in (204, 304) or not response.content:
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise PortalRefused(
            f"The portal answered {response.request.method} {response.request.url.path} with "
            f"something that is not JSON (HTTP {response.status_code}). Is the portal URL right?",
            response.status_code,
        ) from exc
    return data if isinstance(data, dict) else {"items": data}


# --------------------------------------------------------------------------- storage


class BlobNotFound(StorageFailure):
    pass


class BlobUrlExpired(StorageFailure):
    """403 from storage: the signed URL expired or does not grant this operation."""


class BlobExists(StorageFailure):
    """409 on a write-once PUT: the blob is already stored."""


class BlobClient:
    """PUT and (range) GET on signed blob URLs (Azure SAS or the portal's /blob/ URLs).

    No portal token is ever sent here. ``limiter`` (a ``BandwidthLimiter``) paces the
    bodies both ways.
    """

    def __init__(
        self,
        *,
        proxy: str | None = None,
        timeout: float = 120.0,
        retries: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.retry = _Retrying(retries, backoff, max_backoff, sleep)
        self.http = _client(proxy, timeout, transport)
        self.retries_done = 0  # how many retries happened (tests, diagnostics)
        self.last_date: float | None = None  # storage's Date header (clock skew check)
        self.last_date_local: float | None = None

    def close(self) -> None:
        self.http.close()

    def _body(self, data, limiter) -> Iterator[bytes]:
        if hasattr(data, "read"):  # a seekable file (spooled pack): stream it
            data.seek(0)
            while block := data.read(BLOCK):
                if limiter is not None:
                    limiter.consume(len(block))
                yield block
            return
        view = memoryview(data)
        for start in range(0, len(view), BLOCK):
            block = view[start : start + BLOCK]
            if limiter is not None:
                limiter.consume(len(block))
            yield bytes(block)

    def put(self, url: str, data, *, limiter=None, size: int | None = None) -> int:
        """Write-once upload of bytes or a seekable binary file (``size`` bytes).

        Returns the status: 201, or 409 when the blob already exists."""
        if size is None:
            size = len(data)
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "x-ms-version": STORAGE_API_VERSION,
            "If-None-Match": "*",
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        }
        last = ""
        for attempt in range(self.retry.retries + 1):
            hint = None
            try:
                if limiter is None and not hasattr(data, "read"):
                    content = bytes(data)
                else:
                    content = self._body(data, limiter)
                response = self.http.put(url, content=content, headers=headers)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = response.status_code
                if status in (200, 201):
                    return 201
                if status == 409:
                    return 409
                if status == 403:
                    raise BlobUrlExpired(_storage_message("upload", url, response))
                if status == 404:
                    raise BlobNotFound(_storage_message("upload", url, response))
                if status not in RETRY_STATUSES:
                    raise StorageFailure(_storage_message("upload", url, response))
                last = f"HTTP {status}"
                hint = _retry_after(response)
            if attempt < self.retry.retries:
                wait = self.retry.delay(attempt, hint)
                self.retries_done += 1
                log.warning(
                    "upload to %s failed (%s); retry in %.1f s", redact_url(url), last, wait
                )
                self.retry.sleep(wait)
        raise StorageFailure(
            f"Blob storage did not accept the upload to {redact_url(url)} ({last}) after "
            f"{self.retry.retries + 1} attempts."
        )

    def get(self, url: str, offset: int = 0, length: int | None = None, *, limiter=None) -> bytes:
        """The blob, or ``length`` bytes of it from ``offset``."""
        headers = {"x-ms-version": STORAGE_API_VERSION}
        if length is not None:
            if length <= 0:
                return b""
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            headers["Range"] = f"bytes={offset}-"
        last = ""
        for attempt in range(self.retry.retries + 1):
            hint = None
            try:
                with self.http.stream("GET", url, headers=headers) as response:
                    status = response.status_code
                    _note_date(self, response)
                    if status in (200, 206):
                        parts = []
                        for block in response.iter_bytes(BLOCK):
                            if limiter is not None:
                                limiter.consume(len(block))
                            parts.append(block)
                        data = b"".join(parts)
                        if status == 200 and "Range" in headers:
                            end = None if length is None else offset + length
                            data = data[offset:end]
                        if length is not None and len(data) != length:
                            raise StorageFailure(
                                f"Short read from {redact_url(url)}: asked {length} bytes at "
                                f"{offset}, got {len(data)}."
                            )
                        return data
                    response.read()
                    if status == 404:
                        raise BlobNotFound(_storage_message("download", url, response))
                    if status == 403:
                        raise BlobUrlExpired(_storage_message("download", url, response))
                    if status == 416:
                        raise StorageFailure(_storage_message("download", url, response))
                    if status not in RETRY_STATUSES:
                        raise StorageFailure(_storage_message("download", url, response))
                    last = f"HTTP {status}"
                    hint = _retry_after(response)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < self.retry.retries:
                wait = self.retry.delay(attempt, hint)
                self.retries_done += 1
                log.warning(
                    "download of %s failed (%s); retry in %.1f s", redact_url(url), last, wait
                )
                self.retry.sleep(wait)
        raise StorageFailure(
            f"Blob storage did not answer the download of {redact_url(url)} ({last}) after "
            f"{self.retry.retries + 1} attempts."
        )


def _storage_message(what: str, url: str, response: httpx.Response) -> str:
    code = response.headers.get("x-ms-error-code", "")
    text = ""
    try:
        body = response.text
        if "<Message>" in body:
            text = body.split("<Message>", 1)[1].split("</Message>", 1)[0]
    except Exception:  # noqa: BLE001 - best effort for the message only
        text = ""
    detail = ", ".join(x for x in (code, text.strip()) if x)
    return (
        f"Blob storage refused the {what} of {redact_url(url)} (HTTP {response.status_code}"
        + (f": {detail}" if detail else "")
        + ")."
    )
