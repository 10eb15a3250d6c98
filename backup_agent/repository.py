"""Where backups are stored: the ``Repository`` protocol and a directory implementation.

The protocol is shaped for a remote (the portal's agent API): every call is batched
or streams, and the server only ever sees opaque chunk ids, random pack/blob names,
sizes and offsets. The HTTP client implements exactly this protocol; the engine
(``backup.py`` / ``restore.py``) only talks to it.

``LocalRepository`` stores everything in a directory::

    <root>/config.json                 {"format": "backup-portal-local-repo", "version": 1}
    <root>/packs/<2 hex>/<32 hex>      pack files (write-once, temp + fsync + rename)
    <root>/blobs/<kind>/<name>         encrypted blobs (manifests, key blob, ...)
    <root>/points/<id>.json            committed recovery points (temp + rename = atomic)
    <root>/index.sqlite                chunk index: chunks(id, pack, offset, length), packs
    <root>/tmp/                        partial uploads (cleaned on open)

It is used by the tests, the benchmark and as the offline-seeding staging folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = [
    "ChunkRef",
    "ChunkLocation",
    "PointRecord",
    "Repository",
    "RepositoryError",
    "NotFound",
    "LocalRepository",
    "BLOB_KINDS",
]

#: blob kinds a repository accepts
BLOB_KINDS = ("manifest", "keys", "meta")

_NAME_RE = re.compile(r"^[0-9a-f]{32}$")
_ID_RE = re.compile(r"^[0-9a-f]{64}$")
_BLOB_NAME_RE = re.compile(r"^[0-9A-Za-z_.-]{1,128}$")


class RepositoryError(Exception):
    """The repository refused or failed an operation."""


class NotFound(RepositoryError):
    """A pack, blob or point does not exist."""


@dataclass(frozen=True)
class ChunkRef:
    """Where a chunk sits inside the pack being uploaded (``store_pack`` argument)."""

    id: str  # 64 hex chars, keyed BLAKE3 of the plaintext
    offset: int  # byte offset of the encrypted record in the pack
    length: int  # byte length of the encrypted record


@dataclass(frozen=True)
class ChunkLocation:
    """Where a stored chunk can be read from (``locate_chunks`` result)."""

    pack: str
    offset: int
    length: int


@dataclass
class PointRecord:
    """A recovery point as the repository/portal stores it (no plaintext metadata)."""

    manifest: str  # blob name (kind "manifest") of the encrypted file tree
    packs: list[str]  # every pack the point's tree references (for retention / GC)
    files: int = 0  # regular files in the point
    dirs: int = 0
    bytes_scanned: int = 0  # total size of the files in the point
    bytes_new: int = 0  # plaintext bytes of chunks that were new to the repository
    bytes_stored: int = 0  # bytes uploaded (packs + manifest) by this backup
    warnings: int = 0
    created_at: float = field(default_factory=time.time)  # unix time
    kind: str = "files"  # "files" or "system_state"
    id: str | None = None  # assigned by commit_point
    extra: dict = field(default_factory=dict)  # free-form, non-secret (agent version, ...)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PointRecord:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@runtime_checkable
class Repository(Protocol):
    """What the backup engine needs from storage. Implementations must be thread-safe:
    the engine calls ``store_pack``/``read_range`` from worker threads."""

    def lookup_chunks(self, ids: list[str]) -> dict[str, str]:
        """Return ``{id: pack name}`` for those ``ids`` that are stored (absent ids omitted)."""
        ...

    def store_pack(self, name: str, data: bytes | BinaryIO, chunks: list[ChunkRef]) -> None:
        """Upload pack ``name`` (write-once) and register its chunks in the index.

        ``data`` is bytes-like or a readable binary file object (read to EOF). When this
        returns, ``lookup_chunks``/``locate_chunks`` report the chunks: this is what lets an
        interrupted backup resume without re-sending stored packs. Storing the same name
        again with the same size is a no-op (retry after a lost response).
        """
        ...

    def locate_chunks(self, ids: list[str]) -> dict[str, ChunkLocation]:
        """Return ``{id: ChunkLocation}`` for stored ``ids`` (absent ids omitted)."""
        ...

    def read_range(self, pack: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes of pack ``pack`` from ``offset``; raise ``NotFound``
        when the pack is missing and ``RepositoryError`` on a short read."""
        ...

    def put_blob(self, kind: str, name: str, data: bytes) -> None:
        """Store an (already encrypted) blob; ``kind`` is one of ``BLOB_KINDS``."""
        ...

    def get_blob(self, kind: str, name: str) -> bytes:
        """Return a blob; raise ``NotFound``."""
        ...

    def commit_point(self, point: PointRecord) -> str:
        """Atomically record a recovery point; return its id. Called last by a backup,
        after every pack and the manifest are stored, so no partial point can exist."""
        ...

    def list_points(self) -> list[PointRecord]:
        """All committed points, oldest first."""
        ...

    def get_point(self, point_id: str) -> PointRecord:
        """One point; raise ``NotFound``."""
        ...


# --------------------------------------------------------------------------- local


def _check_pack_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise RepositoryError(f"invalid pack name {name!r}")


def _check_blob(kind: str, name: str) -> None:
    if kind not in BLOB_KINDS:
        raise RepositoryError(f"invalid blob kind {kind!r}")
    if not _BLOB_NAME_RE.match(name) or name.startswith("."):
        raise RepositoryError(f"invalid blob name {name!r}")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _copy_stream(src, dst) -> int:
    """Copy a readable file object into ``dst`` (kernel-side when both are real files)."""
    written = 0
    try:
        sfd, dfd = src.fileno(), dst.fileno()
        start = src.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        sfd = None
    if sfd is not None and hasattr(os, "copy_file_range"):
        dst.flush()
        try:
            while True:
                n = os.copy_file_range(sfd, dfd, 8 * 1024 * 1024)
                if n == 0:
                    return written
                written += n
        except OSError:
            # not supported between these filesystems: fall back to a plain copy
            src.seek(start + written)
    while True:
        block = src.read(1024 * 1024)
        if not block:
            return written
        dst.write(block)
        written += len(block)


class LocalRepository:
    """A ``Repository`` in a local directory (see module docstring for the layout)."""

    FORMAT = "backup-portal-local-repo"

    def __init__(self, path: str | os.PathLike, *, create: bool = True, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        cfg = self.path / "config.json"
        if not cfg.exists():
            if not create:
                raise NotFound(f"no repository at {self.path}")
            for sub in ("packs", "blobs", "points", "tmp"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            for kind in BLOB_KINDS:
                (self.path / "blobs" / kind).mkdir(exist_ok=True)
            self._atomic_write(
                cfg, json.dumps({"format": self.FORMAT, "version": 1}).encode(), sync=True
            )
        else:
            doc = json.loads(cfg.read_text())
            if doc.get("format") != self.FORMAT:
                raise RepositoryError(f"{self.path} is not a local backup repository")
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path / "index.sqlite", check_same_thread=False, isolation_level=None, timeout=60
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL" if fsync else "PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS chunks (id TEXT PRIMARY KEY, pack TEXT NOT NULL,"
            " offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS packs (name TEXT PRIMARY KEY, size INTEGER NOT NULL,"
            " created REAL NOT NULL) WITHOUT ROWID"
        )
        self._clean_tmp()

    # ----------------------------------------------------------------- helpers
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> LocalRepository:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _clean_tmp(self) -> None:
        tmp = self.path / "tmp"
        tmp.mkdir(exist_ok=True)
        cutoff = time.time() - 3600
        for p in tmp.iterdir():
            with contextlib.suppress(OSError):
                # Leave recent files alone: another process may be writing them.
                if p.stat().st_mtime < cutoff:
                    p.unlink()

    def _tmp_path(self) -> Path:
        return self.path / "tmp" / f"{secrets.token_hex(8)}.part"

    def _atomic_write(self, dest: Path, data, *, sync: bool) -> int:
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.tmp"
        if (self.path / "tmp").is_dir():
            tmp = self._tmp_path()
        written = 0
        try:
            with open(tmp, "wb") as f:
                if hasattr(data, "read"):
                    written = _copy_stream(data, f)
                else:
                    f.write(data)
                    written = len(data)
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if sync:
            _fsync_dir(dest.parent)
        return written

    def pack_path(self, name: str) -> Path:
        _check_pack_name(name)
        return self.path / "packs" / name[:2] / name

    # ----------------------------------------------------------------- chunks & packs
    def lookup_chunks(self, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        names: dict[str, str] = {}
        ids = list(dict.fromkeys(ids))
        with self._lock:
            for start in range(0, len(ids), 500):
                batch = ids[start : start + 500]
                marks = ",".join("?" * len(batch))
                q = f"SELECT id, pack FROM chunks WHERE id IN ({marks})"
                for cid, pack in self._db.execute(q, batch):
                    out[cid] = names.setdefault(pack, pack)
        return out

    def locate_chunks(self, ids: list[str]) -> dict[str, ChunkLocation]:
        out: dict[str, ChunkLocation] = {}
        ids = list(dict.fromkeys(ids))
        with self._lock:
            for start in range(0, len(ids), 500):
                batch = ids[start : start + 500]
                marks = ",".join("?" * len(batch))
                q = f"SELECT id, pack, offset, length FROM chunks WHERE id IN ({marks})"
                for cid, pack, off, length in self._db.execute(q, batch):
                    out[cid] = ChunkLocation(pack, off, length)
        return out

    def chunks_in_pack(self, name: str) -> list[ChunkRef]:
        """The index entries of one pack (the offline-seed import registers them)."""
        _check_pack_name(name)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, offset, length FROM chunks WHERE pack = ? ORDER BY offset", (name,)
            ).fetchall()
        return [ChunkRef(cid, off, length) for cid, off, length in rows]

    def store_pack(self, name: str, data: bytes | BinaryIO, chunks: list[ChunkRef]) -> None:
        dest = self.pack_path(name)
        if isinstance(data, bytes | bytearray | memoryview):
            size = len(data)
            if chunks and max(c.offset + c.length for c in chunks) > size:
                raise RepositoryError(f"pack {name}: index points past the end of the data")
        else:
            size = None
        if dest.exists():
            if size is not None and dest.stat().st_size != size:
                raise RepositoryError(f"pack {name} already exists with a different size")
            # A retry after a lost response: make sure the index is complete.
        else:
            dest.parent.mkdir(exist_ok=True)
            size = self._atomic_write(dest, data, sync=self.fsync)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO chunks (id, pack, offset, length) VALUES (?,?,?,?)",
                    [(c.id, name, c.offset, c.length) for c in chunks],
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO packs (name, size, created) VALUES (?,?,?)",
                    (name, size if size is not None else dest.stat().st_size, time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def read_range(self, pack: str, offset: int, length: int) -> bytes:
        path = self.pack_path(pack)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"pack {pack} is missing") from None
        try:
            data = os.pread(fd, length, offset)
            if len(data) < length:
                # pread may return short on some filesystems: finish the read.
                parts = [data]
                got = len(data)
                while got < length:
                    more = os.pread(fd, length - got, offset + got)
                    if not more:
                        raise RepositoryError(
                            f"pack {pack}: short read at {offset}+{length} (got {got})"
                        )
                    parts.append(more)
                    got += len(more)
                data = b"".join(parts)
            return data
        finally:
            os.close(fd)

    def read_pack(self, pack: str) -> bytes:
        """Whole pack (used for index rebuilding and checks)."""
        try:
            return self.pack_path(pack).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"pack {pack} is missing") from None

    def list_packs(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT name, size FROM packs"))

    def stored_bytes(self) -> int:
        """Bytes used on disk by packs, blobs and points (not the sqlite index)."""
        total = 0
        for sub in ("packs", "blobs", "points"):
            for dirpath, _dirs, files in os.walk(self.path / sub):
                for f in files:
                    with contextlib.suppress(OSError):
                        total += os.stat(os.path.join(dirpath, f)).st_size
        return total

    # ----------------------------------------------------------------- blobs
    def put_blob(self, kind: str, name: str, data: bytes) -> None:
        _check_blob(kind, name)
        self._atomic_write(self.path / "blobs" / kind / name, data, sync=self.fsync)

    def get_blob(self, kind: str, name: str) -> bytes:
        _check_blob(kind, name)
        try:
            return (self.path / "blobs" / kind / name).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{kind} blob {name} is missing") from None

    # ----------------------------------------------------------------- points
    def commit_point(self, point: PointRecord) -> str:
        # Check that every referenced pack and the manifest exist before committing.
        known = self.list_packs()
        missing = [p for p in point.packs if p not in known]
        if missing:
            raise RepositoryError(f"point references {len(missing)} unknown pack(s)")
        self.get_blob("manifest", point.manifest)
        pid = time.strftime("%Y%m%dT%H%M%S", time.gmtime(point.created_at)) + (
            "-" + secrets.token_hex(4)
        )
        point.id = pid
        self._atomic_write(
            self.path / "points" / f"{pid}.json",
            json.dumps(point.to_dict(), sort_keys=True).encode(),
            sync=self.fsync,
        )
        return pid

    def list_points(self) -> list[PointRecord]:
        points = []
        for p in sorted((self.path / "points").glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                points.append(PointRecord.from_dict(json.loads(p.read_bytes())))
        points.sort(key=lambda r: (r.created_at, r.id or ""))
        return points

    def get_point(self, point_id: str) -> PointRecord:
        if not re.match(r"^[0-9A-Za-z_-]{1,64}$", point_id):
            raise NotFound(f"no point {point_id!r}")
        try:
            return PointRecord.from_dict(
                json.loads((self.path / "points" / f"{point_id}.json").read_bytes())
            )
        except FileNotFoundError:
            raise NotFound(f"no point {point_id!r}") from None

    # ----------------------------------------------------------------- maintenance
    def delete_pack(self, name: str) -> None:
        """Remove a pack and its index entries (retention / tests)."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM chunks WHERE pack = ?", (name,))
            self._db.execute("DELETE FROM packs WHERE name = ?", (name,))
            self._db.execute("COMMIT")
        with contextlib.suppress(FileNotFoundError):
            self.pack_path(name).unlink()


def iter_batches(items: Iterable, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
