"""Restoring a recovery point (all of it or some paths) into a target folder.

* Chunks are located in one batched call, grouped by pack and fetched as coalesced
  byte ranges (neighbouring records merged, so a pack that is mostly needed is read in
  one sequential request) by a pool of threads.
* Every chunk is verified twice: the AES-GCM tag and the recomputed keyed BLAKE3 id.
* Each file is written into a temporary name beside its destination (pre-sized with
  ``ftruncate`` so all-zero chunks stay holes: sparse-friendly), chunks land at their
  offsets as they arrive, and the file is renamed into place once complete, with its
  mode, owner (when running as root) and mtime. An interrupted restore (Ctrl-C) leaves
  the completed files and removes the temporary ones.
* A missing pack or a tampered chunk fails only the files that need it; they are
  listed in ``RestoreResult.failures`` and the rest is restored.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from .crypto import IntegrityError, KeyBundle, decrypt_chunk
from .repository import ChunkLocation, PointRecord, Repository
from .tree import Entry, Tree, load_tree

__all__ = [
    "run_restore",
    "RestoreResult",
    "RestoreProgress",
    "RestoreFailure",
    "RestoreError",
    "CONFLICT_MODES",
]

CONFLICT_MODES = ("overwrite", "skip", "copy")
LOCATE_BATCH = 2000
MAX_GAP = 1024 * 1024  # merge records closer than this into one range request
MAX_RANGE = 16 * 1024 * 1024  # but keep each request at most this big
PROGRESS_INTERVAL = 0.3
_ZERO_MIN = 4096


class RestoreError(Exception):
    """The restore could not start (bad arguments, unreadable manifest)."""


@dataclass
class RestoreFailure:
    path: str  # tree path
    reason: str


@dataclass
class RestoreProgress:
    phase: str  # "planning" | "restoring" | "done"
    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    rate_bps: float = 0.0
    eta_seconds: float | None = None
    elapsed: float = 0.0


@dataclass
class RestoreResult:
    files_restored: int = 0
    dirs_restored: int = 0
    symlinks_restored: int = 0
    bytes_restored: int = 0
    skipped: list[str] = field(default_factory=list)  # existing items left alone
    renamed: dict[str, str] = field(default_factory=dict)  # tree path -> local path (copy)
    failures: list[RestoreFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


# --------------------------------------------------------------------------- helpers


def _safe_rel(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise RestoreError(f"refusing unsafe path in manifest: {path!r}")
    return path


def _copy_name(dest: Path) -> Path:
    stem, suffix = dest.stem, dest.suffix
    if len(suffix) > 32:
        stem, suffix = dest.name, ""
    for i in range(1, 10000):
        tag = " (restored)" if i == 1 else f" (restored {i})"
        budget = 255 - len(os.fsencode(tag + suffix))
        s = (
            os.fsencode(stem)[:budget].decode("utf-8", "ignore")
            if len(os.fsencode(stem)) > budget
            else stem
        )
        cand = dest.with_name(s + tag + suffix)
        if not os.path.lexists(cand):
            return cand
    raise RestoreError(f"no free name for a copy of {dest}")


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_RUN_ID = secrets.token_hex(4)
_tmp_counter = itertools.count()


def _tmp_name(dest: str) -> str:
    # unique per process and call; no syscall (this runs once per restored file)
    return os.path.join(os.path.dirname(dest), f".bprestore-{_RUN_ID}-{next(_tmp_counter)}.tmp")


_IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


_FD_META = hasattr(os, "fchmod") and os.utime in os.supports_fd


def _pwrite(fd: int, data, offset: int) -> int:
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows: callers hold the file's lock
    return os.write(fd, data)


def _apply_meta_fd(fd: int, e: Entry) -> None:
    """Owner, mode and mtime through the open descriptor (no path lookups)."""
    if not _FD_META:
        return  # set by path after closing (see finalize)
    if _IS_ROOT:
        with contextlib.suppress(OSError):
            os.fchown(fd, e.uid, e.gid)
    os.fchmod(fd, e.mode)
    os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))


def _apply_meta(path: Path | str, e: Entry, *, symlink: bool = False) -> None:
    if _IS_ROOT:
        with contextlib.suppress(OSError):
            os.chown(path, e.uid, e.gid, follow_symlinks=False)
    if not symlink:
        os.chmod(path, e.mode)
    with contextlib.suppress(NotImplementedError, OSError):
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=not symlink)


def _is_zero(data: bytes) -> bool:
    n = len(data)
    return n >= _ZERO_MIN and data[0] == 0 and data[-1] == 0 and data == bytes(n)


class _FileState:
    __slots__ = ("entry", "dest", "tmp", "fd", "remaining", "failed", "lock", "holes")

    def __init__(self, entry: Entry, dest: str):
        self.entry = entry
        self.dest = dest
        self.tmp: str | None = None
        self.fd: int | None = None
        self.remaining = len(entry.chunks)
        self.failed = False
        self.holes = False  # skipped writing an all-zero chunk: size via ftruncate
        self.lock = threading.Lock()


@dataclass
class _Task:
    pack: str
    start: int
    end: int
    # (chunk id, offset within the range, record length)
    records: list[tuple[str, int, int]]
    order: int  # position of first need, for scheduling


# --------------------------------------------------------------------------- restore


def run_restore(
    repo: Repository,
    keys: KeyBundle,
    point: PointRecord | str,
    target: str | os.PathLike,
    paths: list[str] | None = None,
    on_conflict: str = "overwrite",
    progress_callback: Callable[[RestoreProgress], None] | None = None,
    limiter=None,
    *,
    workers: int = 3,
    tree: Tree | None = None,
) -> RestoreResult:
    """Restore ``point`` (all, or the items at/under ``paths``) below ``target``.

    Items keep their tree paths under ``target`` (``home/alice/a.txt`` ->
    ``<target>/home/alice/a.txt``). ``on_conflict`` decides what happens when a file
    or symlink already exists: ``overwrite`` it, ``skip`` it, or restore a ``copy``
    beside it (``name (restored).ext``). Check ``result.ok``/``result.failures``.
    """
    if on_conflict not in CONFLICT_MODES:
        raise RestoreError(f"on_conflict must be one of {', '.join(CONFLICT_MODES)}")
    t0 = time.monotonic()
    cb = progress_callback or (lambda p: None)
    lim = limiter if limiter is not None and getattr(limiter, "enabled", True) else None
    if tree is None:
        tree = load_tree(repo, keys, point)
    entries = tree.select(paths)
    if paths and not entries:
        raise RestoreError("None of the requested paths are in this recovery point.")
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    result = RestoreResult()
    failed_paths: set[str] = set()

    def fail(path: str, reason: str) -> None:
        if path not in failed_paths:
            failed_paths.add(path)
            result.failures.append(RestoreFailure(path, reason))

    # 1. folders -----------------------------------------------------------------------
    dirs: list[tuple[Path, Entry]] = []
    files: list[_FileState] = []
    links: list[tuple[Path, Entry]] = []
    fresh: set[str] = set()  # folders created by this restore: nothing can conflict inside
    for e in entries:
        dest = target / _safe_rel(e.path)
        parent = e.parent
        if e.is_dir:
            try:
                if parent in fresh:
                    dest.mkdir()
                    fresh.add(e.path)
                elif not os.path.lexists(dest):
                    dest.mkdir(parents=True)
                    fresh.add(e.path)
                elif not dest.is_dir():
                    if on_conflict != "overwrite":
                        raise FileExistsError("a file is in the way")
                    dest.unlink()
                    dest.mkdir()
                    fresh.add(e.path)
                dirs.append((dest, e))
            except OSError as exc:
                fail(e.path, f"cannot create folder: {exc.strerror or exc}")
            continue
        if parent not in fresh and os.path.lexists(dest):
            if on_conflict == "skip":
                result.skipped.append(e.path)
                continue
            if on_conflict == "copy":
                dest = _copy_name(dest)
                result.renamed[e.path] = str(dest)
            elif dest.is_dir() and not dest.is_symlink():
                fail(e.path, "a folder exists where the file should go")
                continue
        if e.is_file:
            files.append(_FileState(e, str(dest)))  # str: far smaller than a Path
        elif e.is_symlink:
            links.append((dest, e))

    # 2. files -------------------------------------------------------------------------
    total_bytes = sum(fs.entry.size for fs in files)
    progress = {"bytes": 0, "files": 0}
    plock = threading.Lock()
    t_start = time.monotonic()

    def report(phase: str) -> None:
        now = time.monotonic()
        el = now - t_start
        rate = progress["bytes"] / el if el > 0 else 0.0
        eta = (total_bytes - progress["bytes"]) / rate if rate > 0 else None
        cb(
            RestoreProgress(
                phase,
                len(files),
                progress["files"],
                total_bytes,
                progress["bytes"],
                rate,
                eta,
                now - t0,
            )
        )

    report("planning")

    def finalize(fs: _FileState) -> None:
        """Called with fs.lock held once every chunk is written."""
        try:
            if fs.fd is None:  # empty file
                fs.tmp = _tmp_name(fs.dest)
                fs.fd = os.open(fs.tmp, _CREATE_FLAGS, 0o600)
            if fs.holes:
                os.ftruncate(fs.fd, fs.entry.size)
            _apply_meta_fd(fs.fd, fs.entry)
            os.close(fs.fd)
            fs.fd = None
            if not _FD_META:
                _apply_meta(fs.tmp, fs.entry)
            os.replace(fs.tmp, fs.dest)
            fs.tmp = None
            with plock:
                result.files_restored += 1
                result.bytes_restored += fs.entry.size
                progress["files"] += 1
        except OSError as exc:
            abandon(fs, f"cannot write file: {exc.strerror or exc}")

    def abandon(fs: _FileState, reason: str) -> None:
        """Called with fs.lock held: give up on a file and clean its temp file."""
        fs.failed = True
        if fs.fd is not None:
            with contextlib.suppress(OSError):
                os.close(fs.fd)
            fs.fd = None
        if fs.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(fs.tmp)
            fs.tmp = None
        with plock:
            fail(fs.entry.path, reason)

    # where each chunk goes: id -> [(file state, offset in file)]
    need: dict[str, list[tuple[_FileState, int]]] = {}
    first_need: dict[str, int] = {}
    seq = 0
    for fs in files:
        if not fs.entry.chunks:
            with fs.lock:
                finalize(fs)
            continue
        if len(fs.entry.sizes) != len(fs.entry.chunks):
            with fs.lock:
                abandon(fs, "manifest entry lacks chunk sizes")
            continue
        off = 0
        for cid, size in zip(fs.entry.chunks, fs.entry.sizes, strict=True):
            need.setdefault(cid, []).append((fs, off))
            if cid not in first_need:
                first_need[cid] = seq
            seq += 1
            off += size

    ids = list(need)
    locs: dict[str, ChunkLocation] = {}
    for start in range(0, len(ids), LOCATE_BATCH):
        locs.update(repo.locate_chunks(ids[start : start + LOCATE_BATCH]))
    for cid in ids:
        if cid not in locs:
            for fs, _ in need[cid]:
                with fs.lock:
                    if not fs.failed:
                        abandon(fs, f"chunk {cid[:16]} is missing from the repository")

    tasks = _plan(locs, first_need)

    def write_chunk(cid: str, data: bytes) -> None:
        zero = _is_zero(data)
        for fs, off in need[cid]:
            with fs.lock:
                if fs.failed:
                    continue
                try:
                    if fs.fd is None:
                        fs.tmp = _tmp_name(fs.dest)
                        fs.fd = os.open(fs.tmp, _CREATE_FLAGS, 0o600)
                    if zero:
                        fs.holes = True
                    else:
                        view = memoryview(data)
                        pos = 0
                        while pos < len(view):
                            pos += _pwrite(fs.fd, view[pos:], off + pos)
                except OSError as exc:
                    abandon(fs, f"cannot write file: {exc.strerror or exc}")
                    continue
                fs.remaining -= 1
                if fs.remaining == 0:
                    finalize(fs)
            with plock:
                progress["bytes"] += len(data)

    def fail_chunk(cid: str, reason: str) -> None:
        for fs, _ in need[cid]:
            with fs.lock:
                if not fs.failed:
                    abandon(fs, reason)

    stop = threading.Event()

    def run_task(task: _Task) -> None:
        if stop.is_set():
            return
        try:
            blob = repo.read_range(task.pack, task.start, task.end - task.start)
            if len(blob) != task.end - task.start:
                raise OSError(f"short read from pack {task.pack}")
        except Exception as exc:  # missing pack, network error...
            reason = f"pack {task.pack} could not be read: {exc}"
            for cid, _, _ in task.records:
                fail_chunk(cid, reason)
            return
        if lim is not None:
            lim.consume(len(blob))
        view = memoryview(blob)
        for cid, rel, length in task.records:
            if stop.is_set():
                return
            try:
                data = decrypt_chunk(keys, cid, view[rel : rel + length])
            except IntegrityError as exc:
                fail_chunk(cid, f"damaged data: {exc}")
                continue
            write_chunk(cid, data)

    interrupted: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="restore")
    try:
        # keep a bounded number of ranges in flight (memory), in order of first need
        it = iter(tasks)
        inflight: set[Future] = set()
        for task in it:
            inflight.add(pool.submit(run_task, task))
            if len(inflight) >= workers * 2:
                done, inflight = wait(
                    inflight, timeout=PROGRESS_INTERVAL, return_when=FIRST_COMPLETED
                )
                for f in done:
                    f.result()
                report("restoring")
        while inflight:
            done, inflight = wait(inflight, timeout=PROGRESS_INTERVAL, return_when=FIRST_COMPLETED)
            for f in done:
                f.result()
            report("restoring")
    except BaseException as exc:  # Ctrl-C: keep finished files, drop partial ones
        interrupted = exc
        stop.set()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for fs in files:
            with fs.lock:
                if not fs.failed and fs.remaining > 0 and (fs.fd is not None or fs.tmp):
                    if interrupted is not None:
                        fs.failed = True
                        if fs.fd is not None:
                            with contextlib.suppress(OSError):
                                os.close(fs.fd)
                            fs.fd = None
                        if fs.tmp is not None:
                            with contextlib.suppress(OSError):
                                os.unlink(fs.tmp)
                    else:  # pragma: no cover - every chunk was either written or failed
                        abandon(fs, "incomplete")
    if interrupted is not None:
        raise interrupted
    for fs in files:
        if not fs.failed and fs.remaining > 0:
            with fs.lock:
                abandon(fs, "not all chunks could be restored")

    # 3. symlinks, then folder metadata (deepest first, after their contents) ----------
    for dest, e in links:
        try:
            tmp = _tmp_name(str(dest))
            os.symlink(e.target or "", tmp)
            try:
                _apply_meta(tmp, e, symlink=True)
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            result.symlinks_restored += 1
        except OSError as exc:
            fail(e.path, f"cannot create symlink: {exc.strerror or exc}")
    for dest, e in reversed(dirs):
        try:
            _apply_meta(dest, e)
            result.dirs_restored += 1
        except OSError as exc:
            result.warnings.append(f"{dest}: cannot set folder attributes: {exc.strerror or exc}")
    result.failures.sort(key=lambda f: f.path)
    result.duration = time.monotonic() - t0
    report("done")
    return result


def _plan(locs: dict[str, ChunkLocation], first_need: dict[str, int]) -> list[_Task]:
    """Group records by pack and merge neighbours into range requests."""
    by_pack: dict[str, list[tuple[int, int, str]]] = {}
    for cid, loc in locs.items():
        by_pack.setdefault(loc.pack, []).append((loc.offset, loc.length, cid))
    tasks: list[_Task] = []
    for pack, recs in by_pack.items():
        recs.sort()
        cur: _Task | None = None
        for off, length, cid in recs:
            end = off + length
            if cur is not None and off - cur.end <= MAX_GAP and end - cur.start <= MAX_RANGE:
                cur.records.append((cid, off - cur.start, length))
                cur.end = max(cur.end, end)
                cur.order = min(cur.order, first_need[cid])
            else:
                cur = _Task(pack, off, end, [(cid, 0, length)], first_need[cid])
                tasks.append(cur)
    tasks.sort(key=lambda t: t.order)
    return tasks
