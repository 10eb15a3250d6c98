"""Pack files: many encrypted chunk records concatenated into one object of ~24 MiB.

Layout of a pack::

    record_0 || record_1 || ... || record_n-1 || trailer || len(trailer) as uint32 LE

* each record is ``crypto.encrypt_chunk`` output (nonce || AES-GCM ciphertext+tag), and
  the index (repository / portal) maps ``chunk id -> (pack, offset, length)``;
* the trailer is ``crypto.encrypt_blob(json [[id, offset, length], ...],
  aad=b"pack:" + name)``: with the keys a pack can be re-indexed without the server's
  index (disaster recovery); without the keys it reveals nothing but sizes.

Pack names are 32 random hex characters. Ids, names, offsets and lengths are the only
things the server learns.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import tempfile
from typing import BinaryIO

from .crypto import KeyBundle, decrypt_blob, encrypt_blob
from .repository import ChunkRef

__all__ = [
    "PackWriter",
    "new_pack_name",
    "read_pack_trailer",
    "TARGET_PACK_SIZE",
    "MIN_PACK_SIZE",
    "MAX_PACK_SIZE",
    "MAX_CHUNKS_PER_PACK",
]

MIN_PACK_SIZE = 16 * 1024 * 1024
TARGET_PACK_SIZE = 24 * 1024 * 1024
MAX_PACK_SIZE = 32 * 1024 * 1024
# A pack of tiny files is closed early: its index entry (sent to the portal when the pack is
# registered) stays a bounded request, about 1 MB of JSON.
MAX_CHUNKS_PER_PACK = 8192


def new_pack_name() -> str:
    return secrets.token_hex(16)


class PackWriter:
    """Accumulates records; ``finish`` returns the pack (bytes or a spooled file) and index.

    With ``spool_dir`` the pack is written to an anonymous temporary file in that folder
    (the agent's cache folder) instead of memory, so in-flight packs cost disk cache, not
    process memory; ``finish`` then returns the file object positioned at 0 (the caller
    closes it). Without ``spool_dir`` the pack is a ``bytearray``.
    """

    __slots__ = ("bundle", "name", "_buf", "_file", "_size", "refs")

    def __init__(
        self, bundle: KeyBundle, name: str | None = None, spool_dir: str | os.PathLike | None = None
    ):
        self.bundle = bundle
        self.name = name or new_pack_name()
        self.refs: list[ChunkRef] = []
        self._size = 0
        if spool_dir is not None:
            self._file = tempfile.TemporaryFile(dir=spool_dir, prefix="pack-")  # noqa: SIM115
            self._buf = None
        else:
            self._file = None
            self._buf = bytearray()

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self.refs)

    def _write(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)
        else:
            self._buf += data
        self._size += len(data)

    def add(self, cid: str, record: bytes) -> ChunkRef:
        ref = ChunkRef(cid, self._size, len(record))
        self._write(record)
        self.refs.append(ref)
        return ref

    def finish(self) -> tuple[str, bytearray | BinaryIO, list[ChunkRef]]:
        index = [[r.id, r.offset, r.length] for r in self.refs]
        trailer = encrypt_blob(
            self.bundle,
            json.dumps(index, separators=(",", ":")).encode("ascii"),
            b"pack:" + self.name.encode("ascii"),
        )
        self._write(trailer + struct.pack("<I", len(trailer)))
        if self._file is not None:
            f, self._file = self._file, None
            f.flush()
            f.seek(0)
            return self.name, f, self.refs
        buf, self._buf = self._buf, bytearray()
        return self.name, buf, self.refs

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buf = bytearray()


def read_pack_trailer(bundle: KeyBundle, name: str, data: bytes) -> list[ChunkRef]:
    """Decrypt a whole pack's trailer and return its chunk index (for re-indexing)."""
    if len(data) < 4:
        raise ValueError(f"pack {name} is too short")
    (tlen,) = struct.unpack("<I", data[-4:])
    if tlen + 4 > len(data):
        raise ValueError(f"pack {name} has a damaged trailer length")
    trailer = data[len(data) - 4 - tlen : len(data) - 4]
    index = json.loads(decrypt_blob(bundle, bytes(trailer), b"pack:" + name.encode("ascii")))
    return [ChunkRef(i, int(o), int(n)) for i, o, n in index]
