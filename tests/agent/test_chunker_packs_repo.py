import io
import os
import random
import threading
import types

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from backup_agent.chunker import ChunkerParams, chunk_bytes, iter_chunks
from backup_agent.crypto import KeyBundle, chunk_id, decrypt_chunk, encrypt_chunk
from backup_agent.packs import PackWriter, new_pack_name, read_pack_trailer
from backup_agent.repository import (
    ChunkLocation,
    ChunkRef,
    LocalRepository,
    NotFound,
    PointRecord,
    Repository,
    RepositoryError,
)

SMALL = ChunkerParams(256, 1024, 4096)


@pytest.fixture
def settings():
    """The agent needs no Django: satisfy the repository-wide autouse fixture that asks
    for pytest-django's ``settings`` so these tests also run with ``-p no:django``."""
    return types.SimpleNamespace()


def test_default_params_sizes():
    data = random.Random(1).randbytes(24 << 20)
    sizes = [len(c) for c in chunk_bytes(data)]
    assert sum(sizes) == len(data)
    assert all(256 << 10 <= s <= 4 << 20 for s in sizes[:-1])
    avg = sum(sizes) / len(sizes)
    assert 512 << 10 <= avg <= 2 << 20


@hsettings(max_examples=40, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=40000),
    block=st.integers(min_value=1024, max_value=20000),
)
def test_streaming_matches_one_shot(data, block):
    ref = [bytes(c) for c in chunk_bytes(data, SMALL)]
    got = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, block_size=block)]
    assert got == ref
    assert b"".join(got) == data


def test_streaming_matches_one_shot_large_random():
    data = os.urandom(30 << 20)
    ref = [len(c) for c in chunk_bytes(data)]
    for block in (4 << 20, 6 << 20 | 12345, 16 << 20):
        assert [len(c) for c in iter_chunks(io.BytesIO(data), block_size=block)] == ref


def test_content_defined_boundaries_survive_insertion():
    rnd = random.Random(7)
    data = rnd.randbytes(400_000)
    shifted = b"INSERTED" + data
    a = set(chunk_bytes(data, SMALL))
    b = set(chunk_bytes(shifted, SMALL))
    assert len(a & b) >= len(a) - 3


def test_pack_writer_and_trailer():
    k = KeyBundle.generate()
    w = PackWriter(k)
    chunks = [os.urandom(1000 + i) for i in range(5)]
    for c in chunks:
        cid = chunk_id(k, c)
        w.add(cid, encrypt_chunk(k, cid, c))
    name, data, refs = w.finish()
    assert len(name) == 32 and int(name, 16) >= 0
    assert read_pack_trailer(k, name, bytes(data)) == refs
    for ref, c in zip(refs, chunks, strict=True):
        assert decrypt_chunk(k, ref.id, data[ref.offset : ref.offset + ref.length]) == c


def _pack(k, payloads):
    w = PackWriter(k)
    for p in payloads:
        cid = chunk_id(k, p)
        w.add(cid, encrypt_chunk(k, cid, p))
    return w.finish()


def test_local_repository_protocol(tmp_path):
    k = KeyBundle.generate()
    repo = LocalRepository(tmp_path / "repo")
    assert isinstance(repo, Repository)
    name, data, refs = _pack(k, [b"a" * 100, b"b" * 200])
    assert repo.lookup_chunks([r.id for r in refs]) == {}
    repo.store_pack(name, bytes(data), refs)
    ids = [r.id for r in refs] + ["f" * 64]
    assert repo.lookup_chunks(ids) == {refs[0].id: name, refs[1].id: name}
    locs = repo.locate_chunks(ids)
    assert locs[refs[1].id] == ChunkLocation(name, refs[1].offset, refs[1].length)
    rec = repo.read_range(name, refs[1].offset, refs[1].length)
    assert decrypt_chunk(k, refs[1].id, rec) == b"b" * 200
    # retry of the same upload is harmless; a different size is refused
    repo.store_pack(name, bytes(data), refs)
    with pytest.raises(RepositoryError):
        repo.store_pack(name, bytes(data) + b"x", refs)
    with pytest.raises(NotFound):
        repo.read_range(new_pack_name(), 0, 10)
    with pytest.raises(RepositoryError):
        repo.store_pack("../../etc/passwd", b"x", [])
    # file-like upload
    name2, data2, refs2 = _pack(k, [b"c" * 300])
    repo.store_pack(name2, io.BytesIO(bytes(data2)), refs2)
    assert repo.lookup_chunks([refs2[0].id]) == {refs2[0].id: name2}

    repo.put_blob("manifest", "m1", b"blob")
    assert repo.get_blob("manifest", "m1") == b"blob"
    with pytest.raises(NotFound):
        repo.get_blob("manifest", "nope")
    with pytest.raises(RepositoryError):
        repo.put_blob("evil", "x", b"")
    with pytest.raises(RepositoryError):
        repo.put_blob("manifest", "../x", b"")

    with pytest.raises(RepositoryError):
        repo.commit_point(PointRecord(manifest="m1", packs=[new_pack_name()]))
    pid = repo.commit_point(PointRecord(manifest="m1", packs=[name], files=2))
    assert repo.get_point(pid).files == 2
    assert [p.id for p in repo.list_points()] == [pid]
    with pytest.raises(NotFound):
        repo.get_point("nope")
    repo.close()
    # reopen: index persisted
    repo2 = LocalRepository(tmp_path / "repo", create=False)
    assert repo2.lookup_chunks([refs[0].id]) == {refs[0].id: name}
    with pytest.raises(NotFound):
        LocalRepository(tmp_path / "missing", create=False)


def test_local_repository_threads(tmp_path):
    k = KeyBundle.generate()
    repo = LocalRepository(tmp_path / "repo", fsync=False)
    packs = [_pack(k, [os.urandom(500) for _ in range(20)]) for _ in range(16)]
    errors = []

    def up(p):
        try:
            repo.store_pack(p[0], bytes(p[1]), p[2])
            repo.lookup_chunks([r.id for r in p[2]])
        except Exception as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=up, args=(p,)) for p in packs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    all_ids = [r.id for p in packs for r in p[2]]
    assert len(repo.lookup_chunks(all_ids)) == len(all_ids)
    assert len(repo.list_packs()) == 16


def test_chunkref_is_plain_data():
    r = ChunkRef("a" * 64, 0, 10)
    assert r.id == "a" * 64 and r.offset == 0 and r.length == 10
