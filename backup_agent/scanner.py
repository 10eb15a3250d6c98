"""Walking the folders to back up: exclusions, metadata, unreadable entries.

Paths in the tree are the absolute paths of the items without the leading separator
(``/home/alice/docs/a.txt`` -> ``home/alice/docs/a.txt``); see ``tree.py``.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .tree import Entry

__all__ = ["Exclusion", "Excluder", "ScanItem", "scan", "tree_path", "root_ancestors"]


@dataclass(frozen=True)
class Exclusion:
    """One exclusion rule.

    * ``folder`` set, ``pattern`` None: exclude that folder. With ``include_subfolders``
      the whole subtree (and the folder itself) is left out; without it only the files
      directly inside the folder are left out and its subfolders are still backed up.
    * ``pattern`` set (fnmatch on the item's name, e.g. ``*.tmp`` or ``node_modules``):
      exclude matching files and folders (a matching folder takes its subtree with it)
      anywhere when ``folder`` is None, otherwise directly inside ``folder`` and, with
      ``include_subfolders``, in all its subfolders.
    """

    folder: str | None = None
    pattern: str | None = None
    include_subfolders: bool = True

    def __post_init__(self) -> None:
        if self.folder is None and not self.pattern:
            raise ValueError("An exclusion needs a folder, a file pattern or both.")
        if self.folder is not None:
            object.__setattr__(self, "folder", _normabs(self.folder))


def _normabs(p: str | os.PathLike) -> str:
    return os.path.normpath(os.path.abspath(os.fspath(p)))


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Excluder:
    def __init__(self, exclusions: Iterable[Exclusion] = ()):
        self.rules = list(exclusions)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def excluded(self, path: str, parent: str, name: str, is_dir: bool) -> bool:
        for r in self.rules:
            if r.pattern is None:
                if r.include_subfolders:
                    if path == r.folder:
                        return True
                elif not is_dir and parent == r.folder:
                    return True
                continue
            if r.folder is not None:
                if r.include_subfolders:
                    if not _under(parent, r.folder):
                        continue
                elif parent != r.folder:
                    continue
            if fnmatch.fnmatch(name, r.pattern):
                return True
        return False


@dataclass(slots=True)
class ScanItem:
    abspath: str  # path on this machine (for reading)
    entry: Entry  # metadata (no chunks yet)


def tree_path(abspath: str) -> str:
    """Absolute local path -> tree path (no leading separator, '/' separators)."""
    p = abspath.replace("\\", "/")
    if len(p) >= 2 and p[1] == ":":  # Windows drive letter: "C:/x" -> "C/x"
        p = p[0] + p[2:]
    return p.strip("/")


def _entry_from_stat(tpath: str, st: os.stat_result, target: str | None = None) -> Entry | None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        kind, size = "f", st.st_size
    elif stat.S_ISDIR(mode):
        kind, size = "d", 0
    elif stat.S_ISLNK(mode):
        kind, size = "l", 0
    else:
        return None  # sockets, fifos, devices are not backed up
    return Entry(
        tpath,
        kind,
        size,
        stat.S_IMODE(mode),
        st.st_uid,
        st.st_gid,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        target,
    )


def root_ancestors(root: str) -> list[str]:
    """Absolute ancestors of ``root`` (excluding "/" and root itself), shallowest first."""
    out = []
    parent = os.path.dirname(root)
    while parent and parent != os.path.dirname(parent):
        out.append(parent)
        parent = os.path.dirname(parent)
    return list(reversed(out))


def scan(
    roots: Iterable[str | os.PathLike],
    excluder: Excluder | None = None,
    warn: Callable[[str], None] = lambda msg: None,
) -> Iterator[ScanItem]:
    """Yield every item to back up (directories, files, symlinks), roots' ancestors first.

    Unreadable folders and items that vanish during the scan are reported through
    ``warn`` and skipped; the scan continues.
    """
    excluder = excluder or Excluder()
    seen_dirs: set[str] = set()
    norm_roots = []
    for r in roots:
        a = _normabs(r)
        if a not in norm_roots:
            norm_roots.append(a)
    # Skip roots nested inside other roots (they are covered already).
    norm_roots = [r for r in norm_roots if not any(r != o and _under(r, o) for o in norm_roots)]
    for root in norm_roots:
        for anc in root_ancestors(root):
            if anc in seen_dirs:
                continue
            seen_dirs.add(anc)
            try:
                st = os.stat(anc)
            except OSError as exc:
                warn(f"{anc}: cannot read folder metadata: {exc.strerror or exc}")
                continue
            e = _entry_from_stat(tree_path(anc), st)
            if e is not None:
                yield ScanItem(anc, e)
        try:
            st = os.stat(root)  # roots are followed if they are symlinks
        except OSError as exc:
            warn(f"{root}: cannot back up: {exc.strerror or exc}")
            continue
        e = _entry_from_stat(tree_path(root), st)
        if e is None:
            warn(f"{root}: not a file or folder; skipped")
            continue
        seen_dirs.add(root)
        yield ScanItem(root, e)
        if e.is_dir:
            yield from _walk(root, excluder, warn)


def _walk(top: str, excluder: Excluder, warn) -> Iterator[ScanItem]:
    stack = [top]
    check = bool(excluder)
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                dirents = list(it)
        except OSError as exc:
            warn(f"{d}: cannot list folder: {exc.strerror or exc}")
            continue
        dirents.sort(key=lambda de: de.name)
        subdirs = []
        dtree = tree_path(d)
        for de in dirents:
            path = de.path
            try:
                st = de.stat(follow_symlinks=False)
            except OSError as exc:
                warn(f"{path}: skipped: {exc.strerror or exc}")
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if check and excluder.excluded(path, d, de.name, is_dir):
                continue
            target = None
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(path)
                except OSError as exc:
                    warn(f"{path}: cannot read symlink: {exc.strerror or exc}")
                    continue
            e = _entry_from_stat(dtree + "/" + de.name if dtree else de.name, st, target)
            if e is None:
                continue
            yield ScanItem(path, e)
            if is_dir:
                subdirs.append(path)
        stack.extend(reversed(subdirs))
