"""The backup-agent wheel the portal serves, built from this repository's backup_agent package.

A wheel is a zip with a fixed layout, so it is assembled directly: no build tools are
needed on the portal host, and the same sources always give the same file.
"""

import base64
import hashlib
import io
import zipfile
from functools import cache
from pathlib import Path

import backup_agent

PACKAGE_DIR = Path(backup_agent.__file__).resolve().parent
REQUIREMENTS = ["httpx>=0.27", "cryptography>=42", "zstandard>=0.22", "fastcdc>=1.5", "blake3>=0.4"]
WHEEL_TAG = "py3-none-any"


def agent_version() -> str:
    return backup_agent.__version__


def wheel_filename() -> str:
    return f"backup_agent-{agent_version()}-{WHEEL_TAG}.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


@cache
def build_agent_wheel() -> bytes:
    version = agent_version()
    dist_info = f"backup_agent-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        files.append(
            (f"backup_agent/{path.relative_to(PACKAGE_DIR).as_posix()}", path.read_bytes())
        )
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            "Name: backup-agent",
            f"Version: {version}",
            "Summary: Backup Portal agent: encrypted, deduplicated backups of files and folders",
            "Requires-Python: >=3.11",
            *[f"Requires-Dist: {req}" for req in REQUIREMENTS],
            "",
        ]
    )
    files.append((f"{dist_info}/METADATA", metadata.encode()))
    files.append(
        (
            f"{dist_info}/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: backup-portal\nRoot-Is-Purelib: true\nTag: {WHEEL_TAG}\n".encode(),
        )
    )
    files.append(
        (
            f"{dist_info}/entry_points.txt",
            b"[console_scripts]\nbackup-agent = backup_agent.cli:main\n",
        )
    )
    record_lines = [f"{name},{_record_hash(data)},{len(data)}" for name, data in files]
    record_lines.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record_lines) + "\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
