"""Content-defined chunking of streams with FastCDC (compiled ``fastcdc`` implementation).

Files are read in blocks and chunked incrementally, so memory stays bounded by
``block_size + max_size`` whatever the file size. The chunk boundaries are
identical to chunking the whole file in one go: a chunk that ends exactly at
the end of the buffered data is held back until more data (or EOF) arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from fastcdc.fastcdc_cy import chunk_generator

__all__ = ["ChunkerParams", "DEFAULT_PARAMS", "iter_chunks", "chunk_bytes"]


@dataclass(frozen=True)
class ChunkerParams:
    min_size: int = 256 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if not (64 <= self.min_size <= self.avg_size <= self.max_size):
            raise ValueError("chunker sizes must satisfy 64 <= min <= avg <= max")
        if self.avg_size < 256 or self.max_size < 1024:
            raise ValueError("avg_size must be >= 256 and max_size >= 1024")

    def to_dict(self) -> dict:
        return {"min": self.min_size, "avg": self.avg_size, "max": self.max_size}

    @classmethod
    def from_dict(cls, d: dict) -> ChunkerParams:
        return cls(int(d["min"]), int(d["avg"]), int(d["max"]))


DEFAULT_PARAMS = ChunkerParams()
DEFAULT_BLOCK = 8 * 1024 * 1024


def _cuts(view: memoryview, p: ChunkerParams) -> Iterator[tuple[int, int]]:
    for c in chunk_generator(view, p.min_size, p.avg_size, p.max_size, False, None):
        yield c.offset, c.length


def chunk_bytes(data: bytes | memoryview, params: ChunkerParams = DEFAULT_PARAMS) -> list[bytes]:
    """Chunk an in-memory buffer (tests, small data)."""
    view = memoryview(data)
    return [bytes(view[o : o + n]) for o, n in _cuts(view, params)]


def iter_chunks(
    f: BinaryIO,
    params: ChunkerParams = DEFAULT_PARAMS,
    block_size: int = DEFAULT_BLOCK,
    on_read=None,
) -> Iterator[memoryview]:
    """Yield successive chunks of ``f`` as memoryviews.

    A yielded view is only valid until the next iteration step (it points into the
    read buffer); hash/encrypt it before asking for the next one.
    ``on_read(n)`` is called after each read with the number of bytes read.
    """
    block_size = max(block_size, params.max_size)
    carry = b""
    while True:
        block = f.read(block_size)
        if on_read is not None and block:
            on_read(len(block))
        # A buffered regular-file read only comes back short at end of file.
        eof = len(block) < block_size
        buf = (carry + block if block else carry) if carry else block
        if not buf:
            return
        view = memoryview(buf)
        size = len(view)
        pending: tuple[int, int] | None = None
        for off, n in _cuts(view, params):
            if pending is not None:
                yield view[pending[0] : pending[0] + pending[1]]
            pending = (off, n)
        if pending is None:
            return
        last_off, last_len = pending
        if eof:
            yield view[last_off : last_off + last_len]
            return
        # Hold the last chunk back unless it was cut before the end of the data.
        if last_off + last_len < size:  # pragma: no cover - generator always covers the buffer
            yield view[last_off : last_off + last_len]
            carry = bytes(view[last_off + last_len :])
        else:
            carry = bytes(view[last_off:])
        del view
