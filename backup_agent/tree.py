"""The file tree (manifest) of a recovery point.

Serialized form (before compression and encryption) is JSON lines, UTF-8::

    {"format":"backup-portal-tree","version":1,"created":..,"roots":[..],"chunker":{..},
     "count":N,"kind":"files"}
    ["home/alice/docs","d",0,493,1000,1000,mtime_ns,ctime_ns,inode,null,"",[]]
    ["home/alice/docs/a.txt","f",size,420,1000,1000,mtime_ns,ctime_ns,inode,null,"<ids>",[n..]]
    ["home/alice/docs/link","l",0,511,1000,1000,mtime_ns,ctime_ns,inode,"a.txt","",[]]

One array per entry: path, type (``f`` file, ``d`` dir, ``l`` symlink), size, mode
(permission bits, ``st_mode & 0o7777``), uid, gid, mtime_ns, ctime_ns, inode, symlink
target (or null), the ordered chunk ids concatenated (64 hex chars each) and the
plaintext length of each chunk (so a restore can write chunks out of order).
Paths are relative POSIX paths: a root ``/home/alice/docs`` is stored as
``home/alice/docs`` (its ancestors are recorded as directories too), so several roots
never collide and a restore reproduces the layout under the target folder. Names that
are not valid UTF-8 survive as surrogate escapes (JSON ``\\udcXX``).

The blob stored in the repository is ``encrypt_blob(manifest_key, zstd(jsonl),
aad=b"manifest:" + name)``.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import zstandard

from .crypto import KeyBundle, decrypt_blob, encrypt_blob

__all__ = ["Entry", "Tree", "TREE_FORMAT", "new_manifest_name", "load_tree", "ls"]

TREE_FORMAT = "backup-portal-tree"
ID_LEN = 64


@dataclass(slots=True)
class Entry:
    path: str
    type: str  # "f", "d", "l"
    size: int = 0
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0
    target: str | None = None
    chunks: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # plaintext length of each chunk

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def is_file(self) -> bool:
        return self.type == "f"

    @property
    def is_dir(self) -> bool:
        return self.type == "d"

    @property
    def is_symlink(self) -> bool:
        return self.type == "l"

    def to_row(self) -> list:
        return [
            self.path,
            self.type,
            self.size,
            self.mode,
            self.uid,
            self.gid,
            self.mtime_ns,
            self.ctime_ns,
            self.inode,
            self.target,
            "".join(self.chunks),
            self.sizes,
        ]

    @classmethod
    def from_row(cls, row: list) -> Entry:
        ids = row[10]
        chunks = [ids[i : i + ID_LEN] for i in range(0, len(ids), ID_LEN)] if ids else []
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],
            chunks,
            row[11],
        )


def _sort_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def new_manifest_name() -> str:
    return secrets.token_hex(16)


class Tree:
    """An ordered list of entries with path lookups and directory listing."""

    def __init__(
        self,
        entries: Iterable[Entry] = (),
        *,
        roots: list[str] | None = None,
        chunker: dict | None = None,
        created: float | None = None,
        kind: str = "files",
    ):
        self.entries: list[Entry] = sorted(entries, key=lambda e: _sort_key(e.path))
        self.roots = list(roots or [])
        self.chunker = dict(chunker or {})
        self.created = created if created is not None else time.time()
        self.kind = kind
        self._by_path: dict[str, Entry] | None = None
        self._children: dict[str, list[Entry]] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    @property
    def by_path(self) -> dict[str, Entry]:
        if self._by_path is None:
            self._by_path = {e.path: e for e in self.entries}
        return self._by_path

    def get(self, path: str) -> Entry | None:
        return self.by_path.get(_norm(path))

    def ls(self, path: str = "") -> list[Entry]:
        """Direct children of ``path`` ("" or "/" = top level), sorted by name.

        Raises ``FileNotFoundError`` for a path that is not a directory of the tree.
        """
        if self._children is None:
            children: dict[str, list[Entry]] = {}
            for e in self.entries:
                children.setdefault(e.parent, []).append(e)
            self._children = children
        p = _norm(path)
        if p and (p not in self.by_path or not self.by_path[p].is_dir):
            raise FileNotFoundError(f"{path!r} is not a folder in this recovery point")
        return sorted(self._children.get(p, []), key=lambda e: e.name)

    def select(self, paths: list[str] | None) -> list[Entry]:
        """Entries at or below any of ``paths`` (all entries when None/empty)."""
        if not paths:
            return list(self.entries)
        wanted = [_norm(p) for p in paths]
        out = []
        for e in self.entries:
            for w in wanted:
                if not w or e.path == w or e.path.startswith(w + "/"):
                    out.append(e)
                    break
        return out

    def chunk_ids(self) -> set[str]:
        ids: set[str] = set()
        for e in self.entries:
            ids.update(e.chunks)
        return ids

    @property
    def stats(self) -> dict:
        files = sum(1 for e in self.entries if e.is_file)
        dirs = sum(1 for e in self.entries if e.is_dir)
        return {
            "files": files,
            "dirs": dirs,
            "symlinks": len(self.entries) - files - dirs,
            "bytes": sum(e.size for e in self.entries if e.is_file),
        }

    # ----------------------------------------------------------------- serialization
    def _header(self) -> dict:
        return {
            "format": TREE_FORMAT,
            "version": 1,
            "created": self.created,
            "roots": self.roots,
            "chunker": self.chunker,
            "count": len(self.entries),
            "kind": self.kind,
        }

    def _iter_text(self, batch: int = 2000) -> Iterator[bytes]:
        """The JSON-lines form in pieces (ensure_ascii keeps surrogate escapes intact)."""
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        yield (dumps(self._header()) + "\n").encode("ascii")
        entries = self.entries
        for start in range(0, len(entries), batch):
            rows = [dumps(e.to_row()) for e in entries[start : start + batch]]
            rows.append("")
            yield "\n".join(rows).encode("ascii")

    def serialize(self) -> bytes:
        return b"".join(self._iter_text())

    @classmethod
    def _from_lines(cls, lines: Iterable[str]) -> Tree:
        it = iter(lines)
        header = json.loads(next(it))
        if header.get("format") != TREE_FORMAT or header.get("version") != 1:
            raise ValueError("not a version-1 backup tree")
        loads = json.loads
        from_row = Entry.from_row
        entries = [from_row(loads(line)) for line in it if line.strip()]
        tree = cls.__new__(cls)
        tree.entries = entries  # already sorted when written
        tree.roots = header.get("roots", [])
        tree.chunker = header.get("chunker", {})
        tree.created = header.get("created", 0.0)
        tree.kind = header.get("kind", "files")
        tree._by_path = None
        tree._children = None
        return tree

    @classmethod
    def deserialize(cls, data: bytes) -> Tree:
        return cls._from_lines(data.decode("ascii").split("\n"))

    def pack(self) -> bytes:
        """Serialized and zstd-compressed, streamed (no full-size text copy in memory);
        reuse the result for several ``to_blob`` calls."""
        out = io.BytesIO()
        with zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as w:
            for piece in self._iter_text():
                w.write(piece)
        return out.getvalue()

    def to_blob(self, keys: KeyBundle, name: str, packed: bytes | None = None) -> bytes:
        comp = packed if packed is not None else self.pack()
        return encrypt_blob(keys, comp, b"manifest:" + name.encode("ascii"))

    @classmethod
    def from_blob(cls, keys: KeyBundle, name: str, blob: bytes) -> Tree:
        comp = decrypt_blob(keys, blob, b"manifest:" + name.encode("ascii"))
        del blob
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(comp))
        with io.TextIOWrapper(reader, encoding="ascii", newline="\n") as text:
            return cls._from_lines(text)


def _norm(path: str) -> str:
    return path.strip("/").replace("//", "/") if path else ""


def load_tree(repo, keys: KeyBundle, point) -> Tree:
    """Load the tree of ``point`` (a PointRecord or point id) from ``repo``."""
    if isinstance(point, str):
        point = repo.get_point(point)
    return Tree.from_blob(keys, point.manifest, repo.get_blob("manifest", point.manifest))


def ls(repo, keys: KeyBundle, point, path: str = "") -> list[Entry]:
    """Browse a recovery point: the direct children of ``path``."""
    return load_tree(repo, keys, point).ls(path)
