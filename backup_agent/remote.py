"""``HttpRepository``: the engine's ``Repository`` protocol over the portal's agent API.

Metadata goes to the portal (chunk index, upload/download leases, recovery points);
data goes straight to blob storage through short-lived signed URLs::

    lookup_chunks   POST chunks/lookup/ {ids}                     -> {present: {id: pack}}
    store_pack      POST uploads/ {blobs: [{kind: pack, name, size}]} -> {urls}
                    PUT <url> (write-once; 409 = already stored, the portal checks the size)
                    POST packs/ {name, size, chunks: [{id, offset, length}]}
    locate_chunks   POST chunks/locate/[?machine=] {ids}          -> {locations}
    read_range      POST downloads/[?machine=] {blobs} (URLs cached until near expiry),
                    GET <url> with Range
    put_blob        POST uploads/ {kind: manifest} + PUT          (manifests only)
    get_blob        POST downloads/ + GET
    commit_point    POST recovery-points/ {job_id, manifest, packs, stats, created_at}
    list_points     GET recovery-points/[?machine=]
    get_point       GET recovery-points/<id>/[?machine=]

The bandwidth limiter (``self.limiter``, replaceable at any time) paces PUT and GET
bodies; pass ``limiter=None`` to ``run_backup``/``run_restore`` so bytes are not paced
twice. The repository is thread-safe: the engine calls it from worker threads.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from .api import (
    BlobClient,
    BlobNotFound,
    BlobUrlExpired,
    PortalClient,
)
from .errors import AgentError, PortalNotFound, PortalUnreachable, StorageFailure
from .repository import (
    BLOB_KINDS,
    ChunkLocation,
    ChunkRef,
    NotFound,
    PointRecord,
    RepositoryError,
)

__all__ = ["HttpRepository", "RemoteError", "url_expiry"]

URL_MARGIN = 300.0  # refresh a cached download URL this long before it expires
URL_DEFAULT_LIFE = 600.0  # assumed life of a URL whose expiry cannot be read
DOWNLOAD_BATCH = 500


class RemoteError(RepositoryError):
    """A repository operation failed; ``exit_code`` says how (portal, storage, ...)."""

    def __init__(self, message: str, exit_code=None, cause: BaseException | None = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.__cause__ = cause


class RemoteNotFound(NotFound):
    pass


def url_expiry(url: str) -> float | None:
    """Unix expiry of a signed URL (``se=`` as unix seconds or ISO time), or None."""
    try:
        value = parse_qs(urlsplit(url).query).get("se", [None])[0]
    except ValueError:
        return None
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _wrap(exc: AgentError) -> RemoteError:
    return RemoteError(exc.message, exc.exit_code, exc)


class HttpRepository:
    """``Repository`` backed by the portal (metadata) and blob storage (data)."""

    def __init__(
        self,
        portal: PortalClient,
        blobs: BlobClient,
        *,
        machine: str | None = None,
        limiter=None,
        clock=time.time,
    ):
        self.portal = portal
        self.blobs = blobs
        self.machine = machine  # another machine of the vault (restore), or None for this one
        self.limiter = limiter
        self.job_id: str | None = None  # set by the caller before commit_point
        self._clock = clock
        self._urls: dict[str, tuple[str, float]] = {}  # "kind:name" -> (url, expires)
        self._lock = threading.Lock()
        self.point_payloads: dict[str, dict] = {}  # id -> the portal's full payload
        self.stats = {"puts": 0, "put_bytes": 0, "already_stored": 0, "gets": 0, "get_bytes": 0}

    # ------------------------------------------------------------------ helpers
    def _params(self) -> dict | None:
        return {"machine": self.machine} if self.machine else None

    def _limiter(self):
        lim = self.limiter
        return lim if lim is not None and getattr(lim, "enabled", True) else None

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PortalNotFound as exc:
            raise RemoteNotFound(exc.message) from exc
        except AgentError as exc:
            raise _wrap(exc) from exc

    # ------------------------------------------------------------------ chunks
    def lookup_chunks(self, ids: list[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        if self.machine:
            return {i: loc.pack for i, loc in self.locate_chunks(ids).items()}
        data = self._call(self.portal.post, "chunks/lookup/", {"ids": ids})
        present = data.get("present") or {}
        return {str(k): str(v) for k, v in present.items()}

    def locate_chunks(self, ids: list[str]) -> dict[str, ChunkLocation]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        data = self._call(self.portal.post, "chunks/locate/", {"ids": ids}, params=self._params())
        out = {}
        for cid, loc in (data.get("locations") or {}).items():
            out[cid] = ChunkLocation(str(loc["pack"]), int(loc["offset"]), int(loc["length"]))
        # fetch the read URLs of the packs involved in a few batched calls
        self._prefetch_downloads("pack", sorted({loc.pack for loc in out.values()}))
        return out

    # ------------------------------------------------------------------ uploads
    def _lease(self, kind: str, name: str, size: int) -> str:
        data = self._call(
            self.portal.post, "uploads/", {"blobs": [{"kind": kind, "name": name, "size": size}]}
        )
        urls = data.get("urls") or {}
        if len(urls) != 1:
            raise RemoteError(f"The portal did not lease an upload URL for {kind} {name}.")
        return next(iter(urls.values()))

    def _upload(self, kind: str, name: str, data, size: int) -> None:
        for attempt in range(3):
            url = self._lease(kind, name, size)
            try:
                status = self.blobs.put(url, data, limiter=self._limiter(), size=size)
            except BlobUrlExpired as exc:
                if attempt < 2:
                    continue  # lease a fresh URL
                raise _wrap(exc) from exc
            except StorageFailure as exc:
                raise _wrap(exc) from exc
            with self._lock:
                self.stats["puts"] += 1
                if status == 409:
                    self.stats["already_stored"] += 1
                else:
                    self.stats["put_bytes"] += size
            return

    def store_pack(self, name: str, data: bytes | BinaryIO, chunks: list[ChunkRef]) -> None:
        if isinstance(data, bytes | bytearray | memoryview):
            size = len(data)
        else:
            try:  # a spooled pack file: stream it, its size from the end position
                size = data.seek(0, os.SEEK_END)
                data.seek(0)
            except (AttributeError, OSError, ValueError):
                data = data.read()  # not seekable (e.g. a throttled reader): read it all
                size = len(data)
        if chunks and max(c.offset + c.length for c in chunks) > size:
            raise RepositoryError(f"pack {name}: index points past the end of the data")
        self._upload("pack", name, data, size)
        body = {
            "name": name,
            "size": size,
            "chunks": [{"id": c.id, "offset": c.offset, "length": c.length} for c in chunks],
        }
        self._call(self.portal.post, "packs/", body)

    def put_blob(self, kind: str, name: str, data: bytes) -> None:
        if kind not in BLOB_KINDS:
            raise RepositoryError(f"invalid blob kind {kind!r}")
        if kind != "manifest":
            raise RepositoryError(
                f"the portal stores {kind} blobs through its own API, not as blobs"
            )
        self._upload("manifest", name, data, len(data))

    # ------------------------------------------------------------------ downloads
    def _prefetch_downloads(self, kind: str, names: list[str]) -> None:
        now = self._clock()
        with self._lock:
            wanted = [
                n
                for n in names
                if (cached := self._urls.get(f"{kind}:{n}")) is None
                or cached[1] - URL_MARGIN <= now
            ]
        for start in range(0, len(wanted), DOWNLOAD_BATCH):
            batch = wanted[start : start + DOWNLOAD_BATCH]
            self._fetch_urls([{"kind": kind, "name": n} for n in batch])

    def _fetch_urls(self, blobs: list[dict]) -> dict[str, str]:
        data = self._call(self.portal.post, "downloads/", {"blobs": blobs}, params=self._params())
        urls = {str(k): str(v) for k, v in (data.get("urls") or {}).items()}
        now = self._clock()
        with self._lock:
            for key, url in urls.items():
                self._urls[key] = (url, url_expiry(url) or now + URL_DEFAULT_LIFE)
        return urls

    def _download_url(self, kind: str, name: str, *, fresh: bool = False) -> str:
        key = f"{kind}:{name}"
        if not fresh:
            with self._lock:
                cached = self._urls.get(key)
            if cached is not None and cached[1] - URL_MARGIN > self._clock():
                return cached[0]
        urls = self._fetch_urls([{"kind": kind, "name": name}])
        if key not in urls:
            raise RemoteError(f"The portal did not give a download URL for {kind} {name}.")
        return urls[key]

    def _download(self, kind: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        for attempt in range(2):
            url = self._download_url(kind, name, fresh=attempt > 0)
            try:
                data = self.blobs.get(url, offset, length, limiter=self._limiter())
            except BlobUrlExpired as exc:
                if attempt == 0:
                    continue
                raise _wrap(exc) from exc
            except BlobNotFound as exc:
                raise RemoteNotFound(f"{kind} {name} is missing from storage") from exc
            except StorageFailure as exc:
                raise _wrap(exc) from exc
            with self._lock:
                self.stats["gets"] += 1
                self.stats["get_bytes"] += len(data)
            return data
        raise RemoteError(f"could not download {kind} {name}")  # pragma: no cover

    def read_range(self, pack: str, offset: int, length: int) -> bytes:
        return self._download("pack", pack, offset, length)

    def get_blob(self, kind: str, name: str) -> bytes:
        if kind != "manifest":
            raise NotFound(f"{kind} blobs are not stored in the vault's blob storage")
        return self._download("manifest", name)

    # ------------------------------------------------------------------ points
    def commit_point(self, point: PointRecord) -> str:
        body = {
            "job_id": self.job_id,
            "manifest": point.manifest,
            "packs": list(point.packs),
            "files": point.files,
            "dirs": point.dirs,
            "bytes_scanned": point.bytes_scanned,
            "bytes_new": point.bytes_new,
            "bytes_stored": point.bytes_stored,
            "warnings": point.warnings,
            "created_at": point.created_at,
            "kind": point.kind,
            "extra": point.extra,
        }
        try:
            data = self.portal.post("recovery-points/", body, idempotent=False)
        except PortalUnreachable:
            # The answer was lost: the point may exist. Manifest names are unique, so
            # look for ours before trying again (never two points for one backup).
            existing = self._find_point_by_manifest(point.manifest)
            if existing is not None:
                data = existing
            else:
                data = self._call(self.portal.post, "recovery-points/", body, idempotent=False)
        except AgentError as exc:
            raise _wrap(exc) from exc
        point.id = str(data["id"])
        self.point_payloads[point.id] = data
        return point.id

    def _find_point_by_manifest(self, manifest: str) -> dict | None:
        for payload in self._call(self.portal.get, "recovery-points/").get("points", []):
            if payload.get("manifest") == manifest:
                return payload
        return None

    def list_point_payloads(self) -> list[dict]:
        data = self._call(self.portal.get, "recovery-points/", params=self._params())
        points = list(data.get("points") or [])
        points.sort(key=lambda p: (p.get("created_at") or 0, p.get("id") or ""))
        for p in points:
            self.point_payloads[str(p["id"])] = p
        return points

    def list_points(self) -> list[PointRecord]:
        return [PointRecord.from_dict(p) for p in self.list_point_payloads()]

    def get_point(self, point_id: str) -> PointRecord:
        try:
            data = self.portal.get(f"recovery-points/{point_id}/", params=self._params())
        except PortalNotFound as exc:
            raise RemoteNotFound(f"no recovery point {point_id!r}") from exc
        except AgentError as exc:
            raise _wrap(exc) from exc
        self.point_payloads[str(data["id"])] = data
        return PointRecord.from_dict(data)
