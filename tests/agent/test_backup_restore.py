"""Behavioural tests of the backup and restore engine against a LocalRepository."""

import os
import random
import shutil
import stat
import types
from pathlib import Path

import pytest

from backup_agent import backup as backup_mod
from backup_agent.backup import (
    BackupError,
    BackupProgress,
    InsufficientCacheSpace,
    run_backup,
)
from backup_agent.chunker import ChunkerParams
from backup_agent.crypto import KeyBundle
from backup_agent.repository import LocalRepository
from backup_agent.restore import RestoreProgress, run_restore
from backup_agent.scanner import Exclusion, tree_path
from backup_agent.tree import load_tree, ls


@pytest.fixture
def settings():
    """The agent needs no Django: satisfy the repository-wide autouse fixture that asks
    for pytest-django's ``settings`` so these tests also run with ``-p no:django``."""
    return types.SimpleNamespace()


SMALL = ChunkerParams(1024, 4096, 16384)
PACK = 64 * 1024
MARKER = b"PLAINTEXT-MARKER-7f3a9c"


@pytest.fixture
def keys():
    return KeyBundle.generate()


@pytest.fixture
def repo(tmp_path):
    r = LocalRepository(tmp_path / "repo", fsync=False)
    yield r
    r.close()


def backup(repo, keys, roots, tmp_path, **kw):
    kw.setdefault("chunker_params", SMALL)
    kw.setdefault("pack_size", PACK)
    kw.setdefault("cache_dir", tmp_path / "cache")
    return run_backup(repo, keys, [str(r) for r in roots], **kw)


def restored(target: Path, src: Path) -> Path:
    return target / tree_path(str(src))


def make_source(root: Path) -> Path:
    rnd = random.Random(42)
    src = root / "src"
    (src / "docs" / "deep" / "deeper").mkdir(parents=True)
    (src / "empty_dir").mkdir()
    (src / "docs" / "report.txt").write_bytes(MARKER + b" quarterly numbers\n" * 2000)
    (src / "docs" / "random.bin").write_bytes(rnd.randbytes(300_000))
    (src / "docs" / "deep" / "deeper" / "notes.md").write_text("# notes\n" * 50)
    (src / "empty.txt").write_bytes(b"")
    (src / "unicode_ünïcødé_文件_🙂.txt").write_text("unicode content ✓", encoding="utf-8")
    long_name = "L" * 240 + ".txt"
    (src / long_name).write_bytes(b"long name " * 10)
    # a very long path (~ 1500 chars)
    deep = src
    for i in range(6):
        deep = deep / (f"{i}_" + "d" * 240)
    deep.mkdir(parents=True)
    (deep / "leaf.bin").write_bytes(rnd.randbytes(5000))
    # non-UTF-8 file name
    os.symlink("docs/report.txt", src / "link_rel")
    os.symlink("/nonexistent/target", src / "dangling")
    os.symlink("docs", src / "dirlink")
    exe = src / "run.sh"
    exe.write_text("#!/bin/sh\necho hi\n")
    os.chmod(exe, 0o750)
    secret = src / "secret.key"
    secret.write_bytes(MARKER * 3)
    os.chmod(secret, 0o600)
    os.chmod(src / "docs" / "deep", 0o705)
    bad = os.fsencode(str(src)) + b"/bad-\xff\xfe-name.dat"
    with open(bad, "wb") as f:
        f.write(b"non utf8 name")
    # distinctive mtimes (ns precision)
    for i, p in enumerate(sorted(src.rglob("*"))):
        if not p.is_symlink():
            t = 1_600_000_000_123_456_789 + i * 1_000_000_007
            os.utime(p, ns=(t, t))
    os.utime(src, ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_001))
    return src


def snapshot(root: Path) -> dict:
    """Everything we promise to keep: type, content, mode, mtime, symlink target."""
    out = {}
    rootb = os.fsencode(str(root))
    for dirpath, dirnames, filenames in os.walk(rootb):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, rootb)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", f.read(), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def all_repo_bytes(repo_path: Path) -> bytes:
    parts = []
    for p in sorted(repo_path.rglob("*")):
        if p.is_file():
            parts.append(p.read_bytes())
    return b"".join(parts)


# --------------------------------------------------------------------------- round trip


def test_round_trip_byte_for_byte_with_metadata(tmp_path, repo, keys):
    src = make_source(tmp_path)
    res = backup(repo, keys, [src], tmp_path)
    assert not res.warnings, res.warnings
    assert res.point_id in [p.id for p in repo.list_points()]
    out = tmp_path / "out"
    rr = run_restore(repo, keys, res.point_id, out)
    assert rr.ok, rr.failures
    assert snapshot(restored(out, src)) == snapshot(src)
    assert stat.S_IMODE(os.stat(restored(out, src)).st_mode) == stat.S_IMODE(src.stat().st_mode)
    assert os.stat(restored(out, src)).st_mtime_ns == src.stat().st_mtime_ns
    # no temp files left behind
    assert not [p for p in out.rglob(".bprestore-*")]


def test_browse_point(tmp_path, repo, keys):
    src = make_source(tmp_path)
    res = backup(repo, keys, [src], tmp_path)
    top = ls(repo, keys, res.point_id, "")
    assert [e.name for e in top] == [tree_path(str(src)).split("/")[0]]
    names = [e.name for e in ls(repo, keys, res.point, tree_path(str(src)) + "/docs")]
    assert names == ["deep", "random.bin", "report.txt"]
    tree = load_tree(repo, keys, res.point_id)
    entry = tree.get(tree_path(str(src / "docs" / "report.txt")))
    assert entry.is_file and entry.size == (src / "docs" / "report.txt").stat().st_size
    with pytest.raises(FileNotFoundError):
        tree.ls(tree_path(str(src / "docs" / "report.txt")))


def test_no_plaintext_in_repository(tmp_path, repo, keys):
    src = make_source(tmp_path)
    backup(repo, keys, [src], tmp_path)
    blob = all_repo_bytes(tmp_path / "repo")
    assert MARKER not in blob
    assert b"quarterly numbers" not in blob
    assert b"report.txt" not in blob and "ünïcødé".encode() not in blob
    assert b"notes" not in blob
    # the local file cache is encrypted too
    cache_bytes = all_repo_bytes(tmp_path / "cache")
    assert cache_bytes and b"report.txt" not in cache_bytes and MARKER not in cache_bytes


def test_second_backup_sends_only_changed_chunks(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(3)
    for i in range(20):
        (src / f"f{i}.bin").write_bytes(rnd.randbytes(100_000))
    first = backup(repo, keys, [src], tmp_path)
    assert first.stats["bytes_new"] == 2_000_000
    # change 100 bytes in the middle of one file, add one small file
    p = src / "f7.bin"
    data = bytearray(p.read_bytes())
    data[50_000:50_100] = rnd.randbytes(100)
    p.write_bytes(bytes(data))
    (src / "new.txt").write_bytes(b"new file")
    second = backup(repo, keys, [src], tmp_path)
    s = second.stats
    assert s["files_read"] == 2 and s["files_unchanged"] == 19
    assert s["bytes_read"] == 100_000 + 8
    assert 0 < s["bytes_new"] <= 2 * SMALL.max_size + 8
    assert second.point.bytes_stored < 60_000
    # nothing changed: nothing read, nothing new
    third = backup(repo, keys, [src], tmp_path)
    assert third.stats["bytes_read"] == 0 and third.stats["bytes_new"] == 0
    out = tmp_path / "out"
    assert run_restore(repo, keys, second.point_id, out).ok
    assert restored(out, src / "f7.bin").read_bytes() == bytes(data)
    # the first point still restores the old content
    out1 = tmp_path / "out1"
    assert run_restore(repo, keys, first.point_id, out1).ok
    assert restored(out1, src / "f7.bin").read_bytes() != bytes(data)
    assert not restored(out1, src / "new.txt").exists()


def test_dedup_within_backup_and_previous_tree_argument(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    blob = random.Random(5).randbytes(200_000)
    for i in range(5):
        (src / f"copy{i}.bin").write_bytes(blob)
    res = backup(repo, keys, [src], tmp_path, cache_dir=None)
    assert res.stats["bytes_new"] == 200_000
    again = backup(repo, keys, [src], tmp_path, cache_dir=None, previous_tree=res.tree)
    assert again.stats["bytes_read"] == 0


def test_file_cache_does_not_trust_missing_chunks(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(random.Random(1).randbytes(50_000))
    first = backup(repo, keys, [src], tmp_path)
    for pack in first.point.packs:
        repo.delete_pack(pack)  # e.g. pruned by retention
    second = backup(repo, keys, [src], tmp_path)
    assert second.stats["bytes_read"] == 50_000 and second.stats["bytes_new"] == 50_000
    out = tmp_path / "out"
    assert run_restore(repo, keys, second.point_id, out).ok


def test_multiple_roots_and_single_file_root(tmp_path, repo, keys):
    a = tmp_path / "a" / "same"
    b = tmp_path / "b" / "same"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    (a / "x.txt").write_text("from a")
    (b / "x.txt").write_text("from b")
    single = tmp_path / "single.txt"
    single.write_text("single")
    res = backup(repo, keys, [a, b, single, a / "x.txt"], tmp_path)
    out = tmp_path / "out"
    assert run_restore(repo, keys, res.point_id, out).ok
    assert restored(out, a / "x.txt").read_text() == "from a"
    assert restored(out, b / "x.txt").read_text() == "from b"
    assert restored(out, single).read_text() == "single"


# --------------------------------------------------------------------------- damage


def test_tampered_pack_reports_affected_files_and_restores_rest(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(9)
    for i in range(10):
        (src / f"f{i}.bin").write_bytes(rnd.randbytes(70_000))
    res = backup(repo, keys, [src], tmp_path)
    tree = res.tree
    victim = tree.get(tree_path(str(src / "f3.bin")))
    loc = repo.locate_chunks([victim.chunks[0]])[victim.chunks[0]]
    affected = {e.path for e in tree if e.is_file and victim.chunks[0] in e.chunks}
    path = repo.pack_path(loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    rr = run_restore(repo, keys, res.point_id, out)
    assert not rr.ok
    assert {f.path for f in rr.failures} == affected
    assert all("damaged" in f.reason for f in rr.failures)
    for i in range(10):
        p = restored(out, src / f"f{i}.bin")
        if tree_path(str(src / f"f{i}.bin")) in affected:
            assert not p.exists()
        else:
            assert p.read_bytes() == (src / f"f{i}.bin").read_bytes()
    assert not list(out.rglob(".bprestore-*"))


def test_deleted_pack_reports_affected_files(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(11)
    for i in range(10):
        (src / f"f{i}.bin").write_bytes(rnd.randbytes(70_000))
    res = backup(repo, keys, [src], tmp_path)
    assert len(res.point.packs) > 3
    gone = res.point.packs[1]
    repo.pack_path(gone).unlink()  # index still lists it: read fails
    affected = {
        e.path
        for e in res.tree
        if e.is_file and any(repo.lookup_chunks(e.chunks).get(c) == gone for c in e.chunks)
    }
    assert affected
    out = tmp_path / "out"
    rr = run_restore(repo, keys, res.point_id, out)
    assert {f.path for f in rr.failures} == affected
    assert all("could not be read" in f.reason for f in rr.failures)
    ok = [e for e in res.tree if e.is_file and e.path not in affected]
    assert ok
    for e in ok:
        assert (out / e.path).read_bytes() == Path("/" + e.path).read_bytes()
    # and when the index no longer knows the chunks at all
    repo.delete_pack(gone)
    rr2 = run_restore(repo, keys, res.point_id, tmp_path / "out2")
    assert {f.path for f in rr2.failures} == affected
    assert all("missing" in f.reason for f in rr2.failures)


# --------------------------------------------------------------------------- crash / resume


class CrashAfter:
    """Repository wrapper that dies after N successful store_pack calls."""

    def __init__(self, inner, n):
        self.inner, self.n = inner, n
        self.stored: list[tuple[str, int]] = []

    def store_pack(self, name, data, chunks):
        if self.n is not None and len(self.stored) >= self.n:
            raise ConnectionError("simulated crash")
        self.inner.store_pack(name, data, chunks)
        self.stored.append(name)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


def test_resume_after_crash_does_not_resend_stored_packs(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(13)
    for i in range(12):
        (src / f"f{i}.bin").write_bytes(rnd.randbytes(80_000))
    crashing = CrashAfter(repo, 4)
    with pytest.raises(BackupError, match="nothing was committed"):
        backup(repo=crashing, keys=keys, roots=[src], tmp_path=tmp_path, workers=1)
    assert repo.list_points() == []  # no partial point
    assert len(crashing.stored) == 4
    stored_chunks = set()
    for name in crashing.stored:
        with repo._lock:
            stored_chunks |= {
                r[0] for r in repo._db.execute("SELECT id FROM chunks WHERE pack=?", (name,))
            }
    assert stored_chunks
    # rerun: the chunks of the 4 packs are not sent again
    sent_ids = []

    class Spy(CrashAfter):
        def store_pack(self, name, data, chunks):
            sent_ids.extend(c.id for c in chunks)
            super().store_pack(name, data, chunks)

    again = Spy(repo, None)
    res = backup(again, keys, [src], tmp_path)
    assert not set(sent_ids) & stored_chunks
    total_new = res.stats["bytes_new"]
    assert total_new < 12 * 80_000
    out = tmp_path / "out"
    assert run_restore(repo, keys, res.point_id, out).ok
    for i in range(12):
        assert restored(out, src / f"f{i}.bin").read_bytes() == (src / f"f{i}.bin").read_bytes()


def test_kill_during_upload_leaves_no_point(tmp_path, keys):
    """A real kill -9 in the middle of a backup, then a rerun."""
    import subprocess
    import sys
    import textwrap

    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(17)
    for i in range(30):
        (src / f"f{i}.bin").write_bytes(rnd.randbytes(100_000))
    keyfile = tmp_path / "k"
    keyfile.write_bytes(keys.chunk_key + keys.id_key + keys.manifest_key)
    script = textwrap.dedent(
        f"""
        import os, signal
        from backup_agent.crypto import KeyBundle
        from backup_agent.chunker import ChunkerParams
        from backup_agent.repository import LocalRepository
        from backup_agent.backup import run_backup
        raw = open({str(keyfile)!r}, 'rb').read()
        keys = KeyBundle(raw[:32], raw[32:64], raw[64:])
        repo = LocalRepository({str(tmp_path / "repo")!r})
        n = 0
        orig = repo.store_pack
        def store(name, data, chunks):
            global n
            orig(name, data, chunks)
            n += 1
            if n == 5:
                os.kill(os.getpid(), signal.SIGKILL)
        repo.store_pack = store
        run_backup(repo, keys, [{str(src)!r}], cache_dir={str(tmp_path / "cache")!r},
                   chunker_params=ChunkerParams(1024, 4096, 16384), pack_size=65536)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    assert proc.returncode == -9
    repo = LocalRepository(tmp_path / "repo")
    assert repo.list_points() == []
    before = set(repo.list_packs())
    assert len(before) == 5
    res = backup(repo, keys, [src], tmp_path)
    assert res.stats["bytes_new"] < 3_000_000
    assert before <= set(res.point.packs)
    assert run_restore(repo, keys, res.point_id, tmp_path / "out").ok


# --------------------------------------------------------------------------- checks & warnings


def test_cache_space_check(tmp_path, repo, keys, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"x" * 1_000_000)
    Usage = type(shutil.disk_usage(tmp_path))
    monkeypatch.setattr(backup_mod.shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(InsufficientCacheSpace) as ei:
        backup(repo, keys, [src], tmp_path)
    msg = str(ei.value)
    assert "1,000 bytes" in msg and "50,000 bytes" in msg and "cache" in msg
    assert repo.list_points() == [] and repo.list_packs() == {}
    monkeypatch.setattr(
        backup_mod.shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 50_000, 50_000)
    )
    assert backup(repo, keys, [src], tmp_path).point_id


def test_exclusions(tmp_path, repo, keys):
    src = tmp_path / "src"
    for d in ("keep/sub", "skipall/sub", "onlyfiles/sub", "scoped/sub", "node_modules/x"):
        (src / d).mkdir(parents=True)
    for d in ("keep", "keep/sub", "skipall", "skipall/sub", "onlyfiles", "onlyfiles/sub"):
        (src / d / "a.txt").write_text(d)
        (src / d / "b.tmp").write_text(d)
    for d in ("scoped", "scoped/sub"):
        (src / d / "c.log").write_text(d)
    (src / "keep" / "c.log").write_text("log outside scope")
    (src / "node_modules" / "x" / "m.js").write_text("js")
    rules = [
        Exclusion(folder=str(src / "skipall"), include_subfolders=True),
        Exclusion(folder=str(src / "onlyfiles"), include_subfolders=False),
        Exclusion(pattern="*.tmp"),
        Exclusion(folder=str(src / "scoped"), pattern="*.log", include_subfolders=False),
        Exclusion(pattern="node_modules"),
    ]
    res = backup(repo, keys, [src], tmp_path, exclusions=rules)
    base = tree_path(str(src))
    got = {e.path[len(base) + 1 :] for e in res.tree if e.path.startswith(base + "/")}
    assert got == {
        "keep",
        "keep/a.txt",
        "keep/c.log",
        "keep/sub",
        "keep/sub/a.txt",
        "onlyfiles",
        "onlyfiles/sub",
        "onlyfiles/sub/a.txt",
        "scoped",
        "scoped/sub",
        "scoped/sub/c.log",
    }
    with pytest.raises(ValueError):
        Exclusion()


def test_unreadable_and_vanishing_files_become_warnings(tmp_path, repo, keys, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("ok.txt", "locked.txt", "vanish.txt"):
        (src / name).write_text(name)
    real_open = open

    def fake_open(path, *a, **kw):
        if str(path).endswith("locked.txt"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **kw)

    monkeypatch.setattr(backup_mod, "open", fake_open, raising=False)

    phases = []

    def cb(p):
        phases.append(p.phase)
        # after the scan, before reading: the file disappears
        if p.phase == "scanning" and p.files_total == 3:
            (src / "vanish.txt").unlink(missing_ok=True)

    res = backup(repo, keys, [src], tmp_path, progress_callback=cb)
    assert res.has_warnings
    joined = "\n".join(res.warnings)
    assert "locked.txt" in joined and "Permission denied" in joined
    assert "vanish.txt" in joined
    names = {e.name for e in res.tree}
    assert "ok.txt" in names and "locked.txt" not in names and "vanish.txt" not in names
    assert res.point.warnings == 2
    assert phases[0] == "scanning" and phases[-1] == "done" and "committing" in phases


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file_permission_bits(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret").write_text("x")
    os.chmod(src / "secret", 0)
    res = backup(repo, keys, [src], tmp_path)
    assert any("secret" in w for w in res.warnings)


def test_progress_reports(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(random.Random(1).randbytes(400_000))
    seen: list[BackupProgress] = []
    res = backup(repo, keys, [src], tmp_path, progress_callback=seen.append)
    last = seen[-1]
    assert last.phase == "done" and last.files_done == last.files_total == 1
    assert last.bytes_scanned == last.bytes_total == 400_000
    assert last.bytes_uploaded == res.stats["bytes_stored"] - (
        res.stats["bytes_stored"] - last.bytes_uploaded
    )
    rseen: list[RestoreProgress] = []
    run_restore(repo, keys, res.point_id, tmp_path / "o", progress_callback=rseen.append)
    assert rseen[-1].phase == "done" and rseen[-1].bytes_done == 400_000


# --------------------------------------------------------------------------- restore options


def test_partial_restore_and_conflicts(tmp_path, repo, keys):
    src = make_source(tmp_path)
    res = backup(repo, keys, [src], tmp_path)
    out = tmp_path / "out"
    docs = tree_path(str(src / "docs"))
    rr = run_restore(repo, keys, res.point_id, out, paths=[docs])
    assert rr.ok
    assert (out / docs / "report.txt").exists()
    assert not restored(out, src / "empty.txt").exists()
    # conflicts
    target = out / docs / "report.txt"
    target.write_text("local edit")
    rr = run_restore(
        repo, keys, res.point_id, out, paths=[docs + "/report.txt"], on_conflict="skip"
    )
    assert rr.skipped == [docs + "/report.txt"] and target.read_text() == "local edit"
    rr = run_restore(
        repo, keys, res.point_id, out, paths=[docs + "/report.txt"], on_conflict="copy"
    )
    copy = Path(rr.renamed[docs + "/report.txt"])
    assert copy.name == "report (restored).txt"
    assert copy.read_bytes() == (src / "docs" / "report.txt").read_bytes()
    assert target.read_text() == "local edit"
    rr = run_restore(
        repo, keys, res.point_id, out, paths=[docs + "/report.txt"], on_conflict="overwrite"
    )
    assert target.read_bytes() == (src / "docs" / "report.txt").read_bytes()
    with pytest.raises(Exception, match="None of the requested paths"):
        run_restore(repo, keys, res.point_id, out, paths=["no/such/path"])


def test_ctrl_c_during_restore_keeps_finished_files(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(21)
    for i in range(40):
        (src / f"f{i:02}.bin").write_bytes(rnd.randbytes(60_000))
    res = backup(repo, keys, [src], tmp_path)
    out = tmp_path / "out"
    calls = {"n": 0}

    def cb(p):
        if p.phase == "restoring":
            calls["n"] += 1
            if p.files_done >= 3:
                raise KeyboardInterrupt

    import backup_agent.restore as rmod

    old = rmod.PROGRESS_INTERVAL
    rmod.PROGRESS_INTERVAL = 0.0
    try:
        with pytest.raises(KeyboardInterrupt):
            run_restore(repo, keys, res.point_id, out, progress_callback=cb, workers=1)
    finally:
        rmod.PROGRESS_INTERVAL = old
    got = [p for p in restored(out, src).iterdir()] if restored(out, src).exists() else []
    assert not [p for p in got if p.name.startswith(".bprestore-")]
    assert 3 <= len(got) < 40
    for p in got:
        assert p.read_bytes() == (src / p.name).read_bytes()


def test_sparse_zero_file_round_trip(tmp_path, repo, keys):
    src = tmp_path / "src"
    src.mkdir()
    p = src / "sparse.img"
    with open(p, "wb") as f:
        f.truncate(32 * 1024 * 1024)
        f.seek(3 * 1024 * 1024)
        f.write(b"data in the middle")
    res = backup(repo, keys, [src], tmp_path, chunker_params=ChunkerParams())
    # one chunk with the data, then identical all-zero chunks stored once
    assert res.stats["bytes_new"] <= 8 * 1024 * 1024
    assert res.stats["bytes_stored"] < 100_000  # and they compress to almost nothing
    out = tmp_path / "out"
    assert run_restore(repo, keys, res.point_id, out).ok
    q = restored(out, p)
    assert q.read_bytes() == p.read_bytes()
    assert os.stat(q).st_blocks * 512 < 8 * 1024 * 1024  # holes kept (not 32 MiB)


def test_callback_exception_propagates_and_nothing_is_committed(tmp_path, repo, keys):
    class Cancelled(Exception):
        pass

    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(23)
    for i in range(30):
        (src / f"f{i}.bin").write_bytes(rnd.randbytes(50_000))

    import backup_agent.backup as bmod

    old = bmod.PROGRESS_INTERVAL
    bmod.PROGRESS_INTERVAL = 0.0
    try:

        def cb(p):
            if p.phase == "uploading":
                raise Cancelled("stopped by the service")

        with pytest.raises(Cancelled):
            backup(repo, keys, [src], tmp_path, progress_callback=cb, workers=1)
    finally:
        bmod.PROGRESS_INTERVAL = old
    assert repo.list_points() == []
    # no spooled pack files are left in the cache folder
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith("pack-")]
    res = backup(repo, keys, [src], tmp_path)
    assert run_restore(repo, keys, res.point_id, tmp_path / "out").ok
