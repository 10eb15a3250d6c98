import datetime as dt
import io
import os
import threading
import types
from pathlib import Path

import pytest

from backup_agent import platform as plat
from backup_agent.throttle import (
    UNTHROTTLED,
    BandwidthLimiter,
    ThrottledReader,
    ThrottleSchedule,
    validate_rate,
)


@pytest.fixture
def settings():
    """The agent needs no Django: satisfy the repository-wide autouse fixture that asks
    for pytest-django's ``settings`` so these tests also run with ``-p no:django``."""
    return types.SimpleNamespace()


class FakeClock:
    """Monotonic + wall clock that only advance when someone sleeps."""

    def __init__(self, start: dt.datetime):
        self.start = start
        self.t = 0.0
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        with self.lock:
            self.t += s

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.t)


MONDAY_10AM = dt.datetime(2024, 6, 3, 10, 0, 0)  # a Monday
SATURDAY = dt.datetime(2024, 6, 8, 10, 0, 0)


def limiter_at(start, work=8_000_000, off=80_000_000, **kw):
    clock = FakeClock(start)
    sched = ThrottleSchedule(work, off, **kw)
    lim = BandwidthLimiter(sched, now=clock.now, monotonic=clock.monotonic, sleep=clock.sleep)
    return lim, clock


@pytest.mark.parametrize("rate", [512_000, 8_000_000, 100_000_000, 1_023_000_000])
def test_rate_accuracy_over_ten_seconds(rate):
    lim, clock = limiter_at(MONDAY_10AM, work=rate, off=rate)
    target = rate / 8 * 10  # bytes in 10 s
    sent = 0
    block = max(1024, int(rate / 8 / 50))  # ~50 sends per second
    while sent < target:
        lim.consume(block)
        sent += block
    assert clock.t == pytest.approx(10.0, rel=0.10)
    assert sent / clock.t * 8 == pytest.approx(rate, rel=0.10)


def test_large_single_send_is_paced():
    lim, clock = limiter_at(MONDAY_10AM, work=8_000_000)
    lim.consume(10_000_000)  # 10 MB at 1 MB/s
    assert clock.t == pytest.approx(10.0, rel=0.05)


def test_work_and_off_hours_rates():
    lim, clock = limiter_at(MONDAY_10AM)
    assert lim.current_rate_bps() == 8_000_000
    lim2, _ = limiter_at(SATURDAY)
    assert lim2.current_rate_bps() == 80_000_000
    lim3, _ = limiter_at(dt.datetime(2024, 6, 3, 17, 0, 0))  # end is exclusive
    assert lim3.current_rate_bps() == 80_000_000
    lim4, _ = limiter_at(dt.datetime(2024, 6, 3, 8, 59, 59))
    assert lim4.current_rate_bps() == 80_000_000


def test_switches_rate_when_clock_crosses_boundary():
    # 5 s before the end of work hours: 5 s at 1 MB/s then off-hours 10 MB/s
    lim, clock = limiter_at(dt.datetime(2024, 6, 3, 16, 59, 55))
    sent = 0
    while clock.t < 10.0:
        lim.consume(100_000)
        sent += 100_000
    expected = 5 * 1_000_000 + 5 * 10_000_000
    assert sent == pytest.approx(expected, rel=0.10)


def test_validation():
    assert validate_rate(512_000) == 512_000
    with pytest.raises(ValueError, match="512 Kbps and 1,023 Mbps"):
        ThrottleSchedule(100_000, 8_000_000)
    with pytest.raises(ValueError, match="512 Kbps and 1,023 Mbps"):
        ThrottleSchedule(8_000_000, 2_000_000_000)
    with pytest.raises(ValueError, match="start before"):
        ThrottleSchedule(8_000_000, 8_000_000, work_start=dt.time(18), work_end=dt.time(9))
    with pytest.raises(ValueError, match="0 \\(Monday\\)"):
        ThrottleSchedule(8_000_000, 8_000_000, work_days={7})


def test_unthrottled_and_reader():
    UNTHROTTLED.consume(10**12)  # returns at once
    lim, clock = limiter_at(MONDAY_10AM, work=8_000_000)
    r = ThrottledReader(io.BytesIO(b"x" * 3_000_000), lim)
    assert r.read() == b"x" * 3_000_000
    assert clock.t == pytest.approx(3.0, rel=0.1)


def test_throttled_backup_upload(tmp_path):
    """The backup pipeline pays for every uploaded byte through the limiter."""
    from backup_agent.backup import run_backup
    from backup_agent.chunker import ChunkerParams
    from backup_agent.crypto import KeyBundle
    from backup_agent.repository import LocalRepository

    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(200_000))
    lim, clock = limiter_at(MONDAY_10AM, work=800_000)  # 100 kB/s
    repo = LocalRepository(tmp_path / "repo", fsync=False)
    res = run_backup(
        repo,
        KeyBundle.generate(),
        [src],
        limiter=lim,
        chunker_params=ChunkerParams(1024, 4096, 16384),
        pack_size=65536,
    )
    assert clock.t == pytest.approx(res.stats["bytes_stored"] / 100_000, rel=0.1)


# --------------------------------------------------------------------------- platform


def test_timezone_detection(tmp_path):
    root = tmp_path
    (root / "etc").mkdir()
    assert plat.detect_timezone(root) == "UTC"
    os.symlink("/usr/share/zoneinfo/Europe/Paris", root / "etc" / "localtime")
    assert plat.detect_timezone(root) == "Europe/Paris"
    (root / "etc" / "timezone").write_text("America/New_York\n")
    assert plat.detect_timezone(root) == "America/New_York"
    (root / "etc" / "timezone").write_text("garbage value\n")
    assert plat.detect_timezone(root) == "Europe/Paris"
    os.unlink(root / "etc" / "localtime")
    os.symlink("../usr/share/zoneinfo/posix/Asia/Tokyo", root / "etc" / "localtime")
    assert plat.detect_timezone(root) == "Asia/Tokyo"
    assert isinstance(plat.detect_timezone(), str)


def test_host_and_os():
    assert plat.host_name()
    desc = plat.os_description()
    assert desc
    if plat.system_name() == "linux":
        assert "kernel" in desc


def test_capture_system_state_linux(tmp_path):
    root = tmp_path / "root"
    (root / "etc" / "ssh").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("box\n")
    (root / "etc" / "ssh" / "sshd_config").write_text("Port 22\n")
    os.symlink("hostname", root / "etc" / "hn-link")
    for name in ("passwd", "group", "shadow"):
        (root / "etc" / name).write_text(f"{name} contents\n")
    os.chmod(root / "etc" / "shadow", 0o640)
    (root / "var" / "spool" / "cron" / "crontabs").mkdir(parents=True)
    (root / "var" / "spool" / "cron" / "crontabs" / "alice").write_text("0 * * * * true\n")
    (root / "etc" / "os-release").write_text('PRETTY_NAME="Test Linux 1"\n')
    staging = tmp_path / "staging"
    (staging).mkdir()
    (staging / "stale").write_text("old")
    cap = plat.capture_system_state(
        staging, root=root, package_lister=lambda: ("dpkg", "bash\t5.2\tamd64\n")
    )
    assert not (staging / "stale").exists()
    assert (staging / "etc" / "ssh" / "sshd_config").read_text() == "Port 22\n"
    assert os.readlink(staging / "etc" / "hn-link") == "hostname"
    assert (staging / "accounts" / "shadow").read_text() == "shadow contents\n"
    assert (staging / "accounts" / "shadow").stat().st_mode & 0o777 == 0o640
    assert (staging / "packages.txt").read_text() == "bash\t5.2\tamd64\n"
    assert (staging / "crontabs" / "crontabs" / "alice").exists()
    meta = (staging / "SYSTEM_STATE.json").read_text()
    assert "Test Linux 1" in meta and "installed packages (dpkg)" in meta
    assert cap.roots == [staging]
    assert "/etc/passwd" in cap.captured


def test_capture_system_state_real_machine_package_list(tmp_path):
    if plat.system_name() != "linux":
        pytest.skip("linux only")
    try:
        tool, listing = plat.list_installed_packages()
    except FileNotFoundError:
        pytest.skip("no package manager here")
    assert tool in ("dpkg", "rpm") and listing.strip()


def test_system_state_backup_and_restore(tmp_path):
    from backup_agent.backup import run_backup
    from backup_agent.crypto import KeyBundle
    from backup_agent.repository import LocalRepository
    from backup_agent.restore import run_restore

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    staging = tmp_path / "staging"
    cap = plat.capture_system_state(staging, root=root, package_lister=lambda: ("rpm", "x\n"))
    keys = KeyBundle.generate()
    repo = LocalRepository(tmp_path / "repo", fsync=False)
    res = run_backup(repo, keys, cap.roots, kind="system_state")
    assert res.point.kind == "system_state"
    out = tmp_path / "out"
    assert run_restore(repo, keys, res.point_id, out).ok
    restored = out / str(staging).lstrip("/")
    assert (restored / "accounts" / "passwd").read_text() == "root:x:0:0::/root:/bin/sh\n"


def test_system_state_unsupported_platform(tmp_path):
    with pytest.raises(plat.SystemStateUnsupported, match="not supported on windows"):
        plat.capture_system_state(tmp_path / "s", system="windows")
    assert not (tmp_path / "s").exists()


def test_default_cache_dir():
    assert isinstance(plat.default_cache_dir(), Path)


def test_throttled_restore_download(tmp_path):
    """Restore downloads are paced by the limiter too."""
    from backup_agent.backup import run_backup
    from backup_agent.chunker import ChunkerParams
    from backup_agent.crypto import KeyBundle
    from backup_agent.repository import LocalRepository
    from backup_agent.restore import run_restore

    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(300_000))
    keys = KeyBundle.generate()
    repo = LocalRepository(tmp_path / "repo", fsync=False)
    res = run_backup(
        repo, keys, [src], chunker_params=ChunkerParams(1024, 4096, 16384), pack_size=65536
    )
    lim, clock = limiter_at(SATURDAY, work=8_000_000, off=1_600_000)  # 200 kB/s off-hours
    rr = run_restore(repo, keys, res.point_id, tmp_path / "out", limiter=lim)
    assert rr.ok
    packed = sum(loc.length for loc in repo.locate_chunks(res.tree.chunk_ids()).values())
    assert clock.t == pytest.approx(packed / 200_000, rel=0.1)
