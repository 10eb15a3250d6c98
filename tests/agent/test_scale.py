"""Scale tests: many small files, a huge sparse file, bounded memory."""

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from backup_agent.backup import run_backup
from backup_agent.crypto import KeyBundle
from backup_agent.repository import LocalRepository
from backup_agent.restore import run_restore
from backup_agent.scanner import tree_path
from backup_agent.tree import Tree


@pytest.fixture
def settings():
    """The agent needs no Django: satisfy the repository-wide autouse fixture that asks
    for pytest-django's ``settings`` so these tests also run with ``-p no:django``."""
    return types.SimpleNamespace()


@pytest.mark.slow
def test_fifty_thousand_small_files(tmp_path):
    src = tmp_path / "src"
    n = 50_000
    for d in range(100):
        (src / f"dir{d:03d}").mkdir(parents=True)
    for i in range(n):
        name = f"dir{i % 100:03d}/file_{i:05d}_ünï_{'x' * (i % 50)}.txt"
        (src / name).write_bytes(b"content %d\n" % i)
    keys = KeyBundle.generate()
    repo = LocalRepository(tmp_path / "repo", fsync=False)
    res = run_backup(repo, keys, [src], cache_dir=tmp_path / "cache")
    assert res.stats["files"] == n and not res.warnings
    # the manifest round-trips and supports browsing
    tree = Tree.from_blob(keys, res.point.manifest, repo.get_blob("manifest", res.point.manifest))
    assert len(tree.ls(tree_path(str(src / "dir007")))) == n // 100
    # second run: file cache, nothing read
    again = run_backup(repo, keys, [src], cache_dir=tmp_path / "cache")
    assert again.stats["bytes_read"] == 0 and again.stats["files_unchanged"] == n
    out = tmp_path / "out"
    rr = run_restore(repo, keys, res.point_id, out)
    assert rr.ok and rr.files_restored == n
    for i in (0, 1234, 49_999):
        name = f"dir{i % 100:03d}/file_{i:05d}_ünï_{'x' * (i % 50)}.txt"
        assert (out / tree_path(str(src / name))).read_bytes() == b"content %d\n" % i


@pytest.mark.slow
def test_two_gib_sparse_file_bounded_memory(tmp_path):
    """2 GiB sparse file: backed up and restored in a child process whose peak RSS stays
    far below the file size (streaming, no whole-file buffers), holes preserved."""
    src = tmp_path / "src"
    src.mkdir()
    big = src / "disk.img"
    with open(big, "wb") as f:
        f.truncate(2 * 1024**3)
        for off in (0, 700 * 1024**2, 2 * 1024**3 - 100):
            f.seek(off)
            f.write(os.urandom(100))
    script = textwrap.dedent(
        f"""
        import json
        from backup_agent.backup import run_backup
        from backup_agent.crypto import KeyBundle
        from backup_agent.repository import LocalRepository
        from backup_agent.restore import run_restore
        keys = KeyBundle.generate()
        repo = LocalRepository({str(tmp_path / "repo")!r}, fsync=False)
        res = run_backup(repo, keys, [{str(src)!r}], cache_dir={str(tmp_path / "cache")!r})
        rr = run_restore(repo, keys, res.point_id, {str(tmp_path / "out")!r})
        # VmHWM: this process's own peak (ru_maxrss would include the RSS of the
        # pytest parent, which Linux carries over a vfork + exec)
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
        rss = int(hwm.split()[1]) / 1024
        print(json.dumps({{"ok": rr.ok, "rss": rss, "new": res.stats["bytes_new"]}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"]
    assert out["rss"] < 200, out
    assert out["new"] <= 20 * 1024**2  # zero chunks deduplicated
    restored = tmp_path / "out" / tree_path(str(big))
    assert restored.stat().st_size == 2 * 1024**3
    assert restored.stat().st_blocks * 512 < 64 * 1024**2  # still sparse
    with open(big, "rb") as a, open(restored, "rb") as b:
        for off in (0, 700 * 1024**2, 2 * 1024**3 - 100):
            a.seek(off)
            b.seek(off)
            assert a.read(4096) == b.read(4096)
