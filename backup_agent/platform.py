"""What differs per operating system: identity, time zone, cache folder, System State.

Linux System State is captured into a staging folder which is then backed up like any
folder (``run_backup(..., kind="system_state")``)::

    <staging>/SYSTEM_STATE.json   what was captured, when, on which host / OS
    <staging>/etc/                a copy of /etc (symlinks kept as symlinks)
    <staging>/accounts/           passwd, group, shadow, gshadow (copied last, each in
                                  one read, so the set is consistent with itself)
    <staging>/packages.txt        installed packages (dpkg-query or rpm -qa)
    <staging>/crontabs/           /var/spool/cron

Other platforms raise ``SystemStateUnsupported``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform as _platform
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "SystemStateUnsupported",
    "SystemStateCapture",
    "system_name",
    "host_name",
    "os_description",
    "detect_timezone",
    "default_cache_dir",
    "system_state_supported",
    "capture_system_state",
    "list_installed_packages",
]

ACCOUNT_FILES = ("passwd", "group", "shadow", "gshadow")


class SystemStateUnsupported(Exception):
    def __init__(self, system: str | None = None):
        system = system or _platform.system() or sys.platform
        super().__init__(
            f"System State backup is not supported on {system}: it is available on Linux "
            f"only. Back up files and folders instead."
        )


def system_name() -> str:
    """'linux', 'windows', 'darwin', ..."""
    return (_platform.system() or sys.platform).lower()


def host_name() -> str:
    return socket.gethostname()


def os_description(root: str | os.PathLike = "/") -> str:
    """Human description, e.g. 'Debian GNU/Linux 12 (bookworm), kernel 6.1.0 x86_64'."""
    if system_name() == "linux":
        pretty = None
        for rel in ("etc/os-release", "usr/lib/os-release"):
            with contextlib.suppress(OSError):
                for line in (Path(root) / rel).read_text(errors="replace").splitlines():
                    if line.startswith("PRETTY_NAME="):
                        pretty = line.split("=", 1)[1].strip().strip('"').strip("'")
                        break
            if pretty:
                break
        kernel = f"kernel {_platform.release()} {_platform.machine()}".strip()
        return f"{pretty or 'Linux'}, {kernel}"
    return _platform.platform()


def detect_timezone(root: str | os.PathLike = "/") -> str:
    """IANA time zone name of this machine (``/etc/timezone``, then the ``/etc/localtime``
    symlink target), falling back to ``UTC``."""
    root = Path(root)
    with contextlib.suppress(OSError):
        name = (root / "etc/timezone").read_text().strip().splitlines()[0].strip()
        if _looks_iana(name):
            return name
    localtime = root / "etc/localtime"
    with contextlib.suppress(OSError):
        if localtime.is_symlink():
            target = os.readlink(localtime)
            marker = "zoneinfo/"
            if marker in target:
                name = target.split(marker, 1)[1].strip("/")
                if name.startswith(("posix/", "right/")):
                    name = name.split("/", 1)[1]
                if _looks_iana(name):
                    return name
    return "UTC"


def _looks_iana(name: str) -> bool:
    if not name or " " in name or name.startswith("/") or ".." in name:
        return False
    return name == "UTC" or "/" in name or name.isalpha()


def default_cache_dir() -> Path:
    if system_name() == "windows":
        base = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
        return Path(base) / "BackupAgent" / "cache"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/cache/backup-agent")
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg or Path.home() / ".cache") / "backup-agent"


def system_state_supported() -> bool:
    return system_name() == "linux"


# --------------------------------------------------------------------------- packages


def list_installed_packages(runner: Callable[[list[str]], str] | None = None) -> tuple[str, str]:
    """Return ``(tool, listing)`` using dpkg-query, dpkg -l or rpm -qa (first that works)."""
    run = runner or _run
    candidates = [
        ("dpkg", ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}\n"]),
        ("dpkg", ["dpkg", "-l"]),
        ("rpm", ["rpm", "-qa"]),
    ]
    errors = []
    for tool, cmd in candidates:
        if runner is None and shutil.which(cmd[0]) is None:
            continue
        try:
            return tool, run(cmd)
        except (OSError, subprocess.SubprocessError) as exc:
            errors.append(f"{cmd[0]}: {exc}")
    raise FileNotFoundError("no package manager found (dpkg, rpm); " + "; ".join(errors))


def _run(cmd: list[str]) -> str:
    return subprocess.run(
        cmd, check=True, capture_output=True, text=True, timeout=300, errors="replace"
    ).stdout


# --------------------------------------------------------------------------- system state


@dataclass
class SystemStateCapture:
    staging: Path
    captured: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def roots(self) -> list[Path]:
        """What to pass to ``run_backup``."""
        return [self.staging]


def _copy_tree(src: Path, dst: Path, warnings: list[str]) -> None:
    """Copy a folder keeping symlinks, modes and mtimes; unreadable items become warnings."""
    dst.mkdir(parents=True, exist_ok=True)
    try:
        names = sorted(os.listdir(src))
    except OSError as exc:
        warnings.append(f"{src}: cannot list: {exc.strerror or exc}")
        return
    for name in names:
        s, d = src / name, dst / name
        try:
            st = os.lstat(s)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISDIR(st.st_mode):
                _copy_tree(s, d, warnings)
                shutil.copystat(s, d, follow_symlinks=False)
            elif stat.S_ISREG(st.st_mode):
                shutil.copy2(s, d, follow_symlinks=False)
            else:
                continue  # sockets, fifos
            with contextlib.suppress(OSError):
                os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
        except OSError as exc:
            warnings.append(f"{s}: not captured: {exc.strerror or exc}")


def capture_system_state(
    staging: str | os.PathLike,
    *,
    root: str | os.PathLike = "/",
    package_lister: Callable[[], tuple[str, str]] | None = None,
    system: str | None = None,
) -> SystemStateCapture:
    """Capture Linux System State into ``staging`` (emptied first) and describe it.

    ``root`` and ``package_lister`` exist for tests. Raises ``SystemStateUnsupported``
    on other platforms.
    """
    system = system or system_name()
    if system != "linux":
        raise SystemStateUnsupported(system)
    root = Path(root)
    staging = Path(staging)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    os.chmod(staging, 0o700)  # holds shadow: root only
    cap = SystemStateCapture(staging)

    etc = root / "etc"
    if etc.is_dir():
        _copy_tree(etc, staging / "etc", cap.warnings)
        cap.captured.append("/etc")
    else:
        cap.warnings.append(f"{etc}: not found")

    spool = root / "var/spool/cron"
    if spool.is_dir():
        _copy_tree(spool, staging / "crontabs", cap.warnings)
        cap.captured.append("/var/spool/cron")

    try:
        tool, listing = (package_lister or list_installed_packages)()
        (staging / "packages.txt").write_text(listing)
        cap.captured.append(f"installed packages ({tool})")
    except (OSError, subprocess.SubprocessError) as exc:
        cap.warnings.append(f"installed packages not captured: {exc}")

    # Account databases last and each in a single read, so they match each other as
    # closely as possible (they are small; tools replace them atomically by rename).
    acc = staging / "accounts"
    acc.mkdir()
    for name in ACCOUNT_FILES:
        src = etc / name
        if not src.exists():
            continue
        try:
            data = src.read_bytes()
            st = src.stat()
            (acc / name).write_bytes(data)
            os.chmod(acc / name, stat.S_IMODE(st.st_mode))
            cap.captured.append(f"/etc/{name}")
        except OSError as exc:
            cap.warnings.append(f"{src}: not captured: {exc.strerror or exc}")

    meta = {
        "format": "backup-portal-system-state",
        "version": 1,
        "captured_at": time.time(),
        "host": host_name(),
        "os": os_description(root),
        "timezone": detect_timezone(root),
        "captured": cap.captured,
        "warnings": cap.warnings,
    }
    (staging / "SYSTEM_STATE.json").write_text(json.dumps(meta, indent=2))
    return cap
