"""Backing up folders into a repository: scan, chunk, deduplicate, encrypt, pack, upload.

Pipeline (all in one process, bounded memory)::

    main thread: scan -> space check -> file cache -> queue of files to read
    N workers:   read (4 MiB blocks) -> FastCDC -> keyed BLAKE3 -> batched lookup_chunks
                 -> zstd -> AES-256-GCM -> shared PackWriter
    uploader:    finished packs (bounded queue) -> repo.store_pack (throttled)
    main thread: progress reports, then manifest -> put_blob -> commit_point (last)

A crash at any point leaves no partial recovery point (``commit_point`` is the last
call). Packs stored before the crash are found again by ``lookup_chunks`` on the next
run, so they are not re-sent.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .chunker import DEFAULT_PARAMS, ChunkerParams, iter_chunks
from .crypto import Hasher, KeyBundle, encrypt_chunk
from .packs import MAX_CHUNKS_PER_PACK, TARGET_PACK_SIZE, PackWriter
from .repository import PointRecord, Repository
from .scanner import Excluder, Exclusion, ScanItem, scan
from .throttle import ThrottledReader
from .tree import Entry, Tree, new_manifest_name

__all__ = [
    "run_backup",
    "BackupResult",
    "BackupProgress",
    "BackupError",
    "InsufficientCacheSpace",
    "load_file_cache",
    "save_file_cache",
    "human_bytes",
]

CACHE_SPACE_FRACTION = 0.05
LOOKUP_BATCH = 2000
PENDING_BYTES = 4 * 1024 * 1024  # per worker, chunks hashed but not yet stored
PENDING_CHUNKS = 256
PROGRESS_INTERVAL = 0.3


class BackupError(Exception):
    """The backup could not complete (nothing was committed)."""


class InsufficientCacheSpace(BackupError):
    def __init__(self, cache_dir: Path, free: int, needed: int, total: int):
        self.cache_dir, self.free, self.needed, self.total = cache_dir, free, needed, total
        super().__init__(
            f"Not enough free space in the cache folder {cache_dir}: {human_bytes(free)} free "
            f"({free:,} bytes), but at least {human_bytes(needed)} ({needed:,} bytes, 5% of "
            f"the {human_bytes(total)} to back up) is needed. Free some space or choose "
            f"another cache folder."
        )


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


@dataclass
class BackupProgress:
    phase: str  # "scanning" | "uploading" | "committing" | "done"
    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0  # total size of files in the backup
    bytes_scanned: int = 0  # bytes processed so far (read or unchanged)
    bytes_new: int = 0  # plaintext bytes of new chunks
    bytes_uploaded: int = 0  # pack bytes stored so far
    rate_bps: float = 0.0  # bytes per second read from disk
    eta_seconds: float | None = None
    elapsed: float = 0.0


@dataclass
class BackupResult:
    point_id: str
    point: PointRecord
    tree: Tree
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    duration: float = 0.0

    @property
    def has_warnings(self) -> bool:
        return bool(self.warnings)


# --------------------------------------------------------------------------- file cache

_CACHE_NAME = "filecache-{kind}.bin"


def load_file_cache(cache_dir: Path, keys: KeyBundle, kind: str = "files") -> Tree | None:
    """The tree of the last successful backup of this kind, or None."""
    path = Path(cache_dir) / _CACHE_NAME.format(kind=kind)
    try:
        return Tree.from_blob(keys, "filecache", path.read_bytes())
    except Exception:
        return None


def save_file_cache(
    cache_dir: Path, keys: KeyBundle, tree: Tree, kind: str = "files", packed: bytes | None = None
) -> None:
    path = Path(cache_dir) / _CACHE_NAME.format(kind=kind)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(tree.to_blob(keys, "filecache", packed))
    os.replace(tmp, path)


def _unchanged(prev: Entry | None, e: Entry) -> bool:
    return (
        prev is not None
        and prev.type == "f"
        and prev.size == e.size
        and prev.mtime_ns == e.mtime_ns
        and prev.ctime_ns == e.ctime_ns
        and prev.inode == e.inode
        and (e.size == 0 or bool(prev.chunks))
        and len(prev.sizes) == len(prev.chunks)
    )


# --------------------------------------------------------------------------- engine


class _Engine:
    def __init__(
        self,
        repo: Repository,
        keys: KeyBundle,
        params: ChunkerParams,
        pack_size: int,
        level: int,
        limiter,
        workers: int,
        upload_threads: int,
        spool_dir: Path | None,
    ):
        self.repo = repo
        self.keys = keys
        self.params = params
        self.pack_size = pack_size
        self.level = level
        self.limiter = (
            limiter if limiter is not None and getattr(limiter, "enabled", True) else None
        )
        self.nworkers = workers
        self.nuploaders = upload_threads
        self.spool = spool_dir

        self.lock = threading.Lock()
        self.pack_lock = threading.Lock()
        self.present: dict[str, str] = {}  # chunk id -> pack (stored in the repository)
        self.claimed: set[str] = set()  # ids being stored by this run
        self.writer = self.new_writer()
        # packs spooled to the cache folder cost no memory: allow a deeper queue
        self.upload_q: queue.Queue = queue.Queue(maxsize=4 if spool_dir else 1)
        self.errors: list[BaseException] = []
        self.abort = threading.Event()
        self.warnings: list[str] = []
        # counters (updated under self.lock)
        self.files_done = 0
        self.bytes_scanned = 0
        self.bytes_read = 0
        self.bytes_new = 0
        self.chunks_new = 0
        self.bytes_uploaded = 0
        self.packs_uploaded = 0

    def warn(self, msg: str) -> None:
        with self.lock:
            self.warnings.append(msg)

    # ----------------------------------------------------------------- lookups
    def lookup(self, ids: list[str]) -> None:
        unknown = [i for i in dict.fromkeys(ids) if i not in self.present]
        packs: dict[str, str] = {}  # one string object per pack name
        for start in range(0, len(unknown), LOOKUP_BATCH):
            batch = unknown[start : start + LOOKUP_BATCH]
            found = self.repo.lookup_chunks(batch)
            # keep our own id strings as keys (the answer's are duplicates)
            hits = {cid: packs.setdefault(found[cid], found[cid]) for cid in batch if cid in found}
            with self.lock:
                self.present.update(hits)

    # ----------------------------------------------------------------- workers
    def worker(self, work: queue.Queue) -> None:
        hasher = Hasher(self.keys)
        pending: list[tuple[str, memoryview]] = []
        pending_bytes = 0
        try:
            while not self.abort.is_set():
                item: ScanItem | None = work.get()
                if item is None:
                    break
                e = item.entry
                ids: list[str] = []
                sizes: list[int] = []
                total = 0
                try:
                    with open(item.abspath, "rb") as f:
                        with contextlib.suppress(AttributeError, OSError):
                            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                        for view in iter_chunks(f, self.params, block_size=self.params.max_size):
                            n = len(view)
                            total += n
                            cid = hasher(view)
                            ids.append(cid)
                            sizes.append(n)
                            if cid not in self.present and cid not in self.claimed:
                                pending.append((cid, view))
                                pending_bytes += n
                                if pending_bytes >= PENDING_BYTES or len(pending) >= PENDING_CHUNKS:
                                    self.flush(pending)
                                    pending_bytes = 0
                            with self.lock:
                                self.bytes_scanned += n
                                self.bytes_read += n
                            if self.abort.is_set():
                                return
                        st = os.fstat(f.fileno())
                except OSError as exc:
                    self.warn(f"{item.abspath}: skipped: {exc.strerror or exc}")
                    e.type = "skip"
                    with self.lock:
                        self.bytes_scanned += max(0, e.size - total)
                        self.files_done += 1
                    continue
                if total != e.size or st.st_mtime_ns != e.mtime_ns:
                    self.warn(f"{item.abspath}: changed while it was being backed up")
                    e.ctime_ns = -1  # never trust this entry in the file cache
                    with self.lock:
                        self.bytes_scanned += max(0, e.size - total)
                    e.size = total
                e.chunks = ids
                e.sizes = sizes
                with self.lock:
                    self.files_done += 1
            if pending and not self.abort.is_set():
                self.flush(pending)
        except BaseException as exc:  # surface in the main thread
            self.errors.append(exc)
            self.abort.set()

    def flush(self, pending: list[tuple[str, memoryview]]) -> None:
        try:
            self._flush(pending)
        except OSError as exc:  # repository I/O, not the file being read
            raise BackupError(f"storing chunks failed: {exc}") from exc

    def _flush(self, pending: list[tuple[str, memoryview]]) -> None:
        self.lookup([cid for cid, _ in pending if cid not in self.claimed])
        for cid, view in pending:
            with self.lock:
                if cid in self.present or cid in self.claimed:
                    continue
                self.claimed.add(cid)
            record = encrypt_chunk(self.keys, cid, view, level=self.level)
            full = None
            with self.pack_lock:
                self.writer.add(cid, record)
                if self.writer.size >= self.pack_size or len(self.writer) >= MAX_CHUNKS_PER_PACK:
                    full, self.writer = self.writer, self.new_writer()
            with self.lock:
                self.bytes_new += len(view)
                self.chunks_new += 1
            if full is not None:
                self.enqueue(full)
        pending.clear()

    def new_writer(self) -> PackWriter:
        return PackWriter(self.keys, spool_dir=self.spool)

    def enqueue(self, writer: PackWriter) -> None:
        pack = writer.finish()
        while True:
            if self.abort.is_set():
                raise BackupError("backup aborted")
            try:
                self.upload_q.put(pack, timeout=0.2)
                return
            except queue.Full:
                continue

    # ----------------------------------------------------------------- uploads
    def uploader(self) -> None:
        try:
            while True:
                item = self.upload_q.get()
                if item is None:
                    return
                name, buf, refs = item
                try:
                    if self.abort.is_set():
                        continue  # drain
                    if hasattr(buf, "read"):
                        size = os.fstat(buf.fileno()).st_size
                        data = ThrottledReader(buf, self.limiter) if self.limiter else buf
                    else:
                        size = len(buf)
                        data = (
                            ThrottledReader(io.BytesIO(buf), self.limiter) if self.limiter else buf
                        )
                    self.repo.store_pack(name, data, refs)
                finally:
                    if hasattr(buf, "close"):
                        buf.close()
                with self.lock:
                    for r in refs:
                        self.present[r.id] = name
                    self.bytes_uploaded += size
                    self.packs_uploaded += 1
        except BaseException as exc:
            self.errors.append(exc)
            self.abort.set()
            # keep draining so producers never block forever
            with contextlib.suppress(Exception):
                while (item := self.upload_q.get(timeout=1)) is not None:
                    if hasattr(item[1], "close"):
                        item[1].close()


def run_backup(
    repo: Repository,
    keys: KeyBundle,
    roots: Iterable[str | os.PathLike],
    exclusions: Iterable[Exclusion] = (),
    previous_tree: Tree | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress_callback: Callable[[BackupProgress], None] | None = None,
    limiter=None,
    *,
    chunker_params: ChunkerParams = DEFAULT_PARAMS,
    pack_size: int = TARGET_PACK_SIZE,
    compression_level: int = 3,
    workers: int | None = None,
    upload_threads: int = 1,
    kind: str = "files",
    extra: dict | None = None,
) -> BackupResult:
    """Back up ``roots`` into ``repo`` and commit a recovery point.

    ``previous_tree``: the tree of the last point (for the file cache); when None the
    copy kept in ``cache_dir`` from the last successful run is used. Unreadable or
    vanishing files are skipped and listed in ``result.warnings``. Raises
    ``InsufficientCacheSpace`` before reading anything when the cache folder has less
    free space than 5% of the data to back up, and ``BackupError`` (nothing committed)
    when storing fails.
    """
    t0 = time.monotonic()
    cb = progress_callback or (lambda p: None)
    cache = Path(cache_dir) if cache_dir is not None else None
    rules = list(exclusions)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        rules.append(Exclusion(folder=str(cache)))  # never back up our own cache
    if previous_tree is None and cache is not None:
        previous_tree = load_file_cache(cache, keys, kind)
    nworkers = workers or min(4, max(2, os.cpu_count() or 2))
    eng = _Engine(
        repo,
        keys,
        chunker_params,
        pack_size,
        compression_level,
        limiter,
        nworkers,
        upload_threads,
        cache if cache is not None else Path(tempfile.gettempdir()),
    )
    root_list = [os.path.abspath(os.fspath(r)) for r in roots]

    # 1. scan ------------------------------------------------------------------------
    items: list[ScanItem] = []
    bytes_total = 0
    files_total = 0
    last = 0.0
    for it in scan(root_list, Excluder(rules), eng.warn):
        items.append(it)
        if it.entry.type == "f":
            files_total += 1
            bytes_total += it.entry.size
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL:
            last = now
            cb(BackupProgress("scanning", files_total, 0, bytes_total, elapsed=now - t0))
    cb(BackupProgress("scanning", files_total, 0, bytes_total, elapsed=time.monotonic() - t0))

    # 2. cache space -------------------------------------------------------------------
    if cache is not None:
        free = shutil.disk_usage(cache).free
        needed = int(bytes_total * CACHE_SPACE_FRACTION)
        if free < needed:
            raise InsufficientCacheSpace(cache, free, needed, bytes_total)

    # 3. file cache: unchanged files keep their chunk lists (verified present) ---------
    prev_by_path = previous_tree.by_path if previous_tree is not None else {}
    to_read: list[ScanItem] = []
    reuse: list[tuple[ScanItem, Entry]] = []
    for it in items:
        e = it.entry
        if e.type != "f":
            continue
        prev = prev_by_path.get(e.path)
        if _unchanged(prev, e):
            reuse.append((it, prev))
        else:
            to_read.append(it)
    if reuse:
        eng.lookup([cid for _, prev in reuse for cid in prev.chunks])
        for it, prev in reuse:
            if all(cid in eng.present for cid in prev.chunks):
                it.entry.chunks = prev.chunks  # shared, never mutated
                it.entry.sizes = prev.sizes
                eng.bytes_scanned += it.entry.size
                eng.files_done += 1
            else:
                to_read.append(it)
    bytes_to_read = sum(it.entry.size for it in to_read)
    # Only the entries are needed from here on: free the previous tree and the scan items
    entries = [it.entry for it in items]
    del items, reuse, prev_by_path
    previous_tree = None

    # 4. read, chunk, store ------------------------------------------------------------
    work: queue.Queue = queue.Queue()
    # big files first keeps all workers busy until the end
    to_read.sort(key=lambda it: -it.entry.size)
    for it in to_read:
        work.put(it)
    for _ in range(nworkers):
        work.put(None)
    t_proc = time.monotonic()
    threads = [
        threading.Thread(target=eng.worker, args=(work,), name=f"backup-worker-{i}", daemon=True)
        for i in range(nworkers)
    ]
    uploaders = [
        threading.Thread(target=eng.uploader, name=f"backup-upload-{i}", daemon=True)
        for i in range(upload_threads)
    ]
    for t in threads + uploaders:
        t.start()

    def report(phase: str) -> None:
        now = time.monotonic()
        el = now - t_proc
        rate = eng.bytes_read / el if el > 0 else 0.0
        remaining = max(0, bytes_to_read - eng.bytes_read)
        eta = remaining / rate if rate > 0 else None
        cb(
            BackupProgress(
                phase,
                files_total,
                eng.files_done,
                bytes_total,
                eng.bytes_scanned,
                eng.bytes_new,
                eng.bytes_uploaded,
                rate,
                eta,
                now - t0,
            )
        )

    main_exc: BaseException | None = None  # Ctrl-C, or raised by progress_callback
    try:
        for t in threads:
            while t.is_alive():
                t.join(PROGRESS_INTERVAL)
                report("uploading")
        if not eng.abort.is_set() and eng.writer.refs:
            last_writer, eng.writer = eng.writer, eng.new_writer()
            eng.enqueue(last_writer)
    except BaseException as exc:
        eng.abort.set()
        main_exc = exc
    finally:
        for t in threads:  # workers stop at their next chunk once aborted
            t.join()
        for _ in uploaders:
            with contextlib.suppress(Exception):
                eng.upload_q.put(None, timeout=5)
        for t in uploaders:
            while t.is_alive():
                t.join(PROGRESS_INTERVAL)
                if main_exc is None:
                    try:
                        report("uploading")
                    except BaseException as exc:
                        eng.abort.set()
                        main_exc = exc
        eng.writer.discard()
        while True:  # packs left behind by a failed uploader: drop their spool files
            try:
                left = eng.upload_q.get_nowait()
            except queue.Empty:
                break
            if left is not None and hasattr(left[1], "close"):
                left[1].close()
    if main_exc is not None and not isinstance(main_exc, BackupError):
        raise main_exc  # e.g. KeyboardInterrupt or the callback's own "cancelled" exception
    if eng.errors:
        err = eng.errors[0]
        if isinstance(err, KeyboardInterrupt):
            raise err
        raise BackupError(f"The backup failed and nothing was committed: {err}") from err
    if main_exc is not None:
        raise main_exc

    # 5. manifest and commit -------------------------------------------------------------
    report("committing")
    entries = [e for e in entries if e.type != "skip"]
    tree = Tree(
        entries,
        roots=[r.strip("/") for r in root_list],
        chunker=chunker_params.to_dict(),
        kind=kind,
    )
    all_ids = tree.chunk_ids()
    missing = [cid for cid in all_ids if cid not in eng.present]
    if missing:  # should not happen: every chunk was looked up or stored
        eng.lookup(missing)
        missing = [cid for cid in all_ids if cid not in eng.present]
        if missing:
            raise BackupError(f"{len(missing)} chunk(s) are not in the repository; not committing")
    packs = sorted({eng.present[cid] for cid in all_ids})
    mname = new_manifest_name()
    packed = tree.pack()
    blob = tree.to_blob(keys, mname, packed)
    repo.put_blob("manifest", mname, blob)
    st = tree.stats
    point = PointRecord(
        manifest=mname,
        packs=packs,
        files=st["files"],
        dirs=st["dirs"],
        bytes_scanned=st["bytes"],
        bytes_new=eng.bytes_new,
        bytes_stored=eng.bytes_uploaded + len(blob),
        warnings=len(eng.warnings),
        created_at=tree.created,
        kind=kind,
        extra=dict(extra or {}),
    )
    point_id = repo.commit_point(point)
    if cache is not None:
        with contextlib.suppress(OSError):
            save_file_cache(cache, keys, tree, kind, packed)
    duration = time.monotonic() - t0
    report("done")
    stats = {
        "files": st["files"],
        "dirs": st["dirs"],
        "symlinks": st["symlinks"],
        "bytes_scanned": st["bytes"],
        "bytes_read": eng.bytes_read,
        "bytes_new": eng.bytes_new,
        "bytes_stored": eng.bytes_uploaded + len(blob),
        "chunks_new": eng.chunks_new,
        "packs_uploaded": eng.packs_uploaded,
        "files_read": len(to_read),
        "files_unchanged": files_total - len(to_read),
    }
    return BackupResult(point_id, point, tree, list(eng.warnings), stats, duration)
