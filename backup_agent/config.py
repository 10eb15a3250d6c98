"""The agent's configuration folder.

Layout (folder mode 0700; files holding secrets 0600)::

    <config dir>/config.json         portal URL, machine id and name, token (0600),
                                     vault identification, cache folder, proxy
    <config dir>/keys.json           this machine's keys (0600): the wrapped blob as the
                                     portal stores it and the unlocked data keys the
                                     service needs to run unattended
    <config dir>/unlocked/<name>.json  another machine's unlocked keys (0600), for
                                     restores from it; never sent anywhere
    <config dir>/document.json       the last policy document from the portal (+ ETag)
    <config dir>/state.json          the service's schedule bookkeeping
    <config dir>/agent.log           the service log (rotated: agent.log.1 ... .3)
    <config dir>/run.lock            held by ``backup-agent run`` (one per folder)
    <config dir>/backup.lock         held while a backup runs (never two at once)

Default folder: ``$BACKUP_AGENT_CONFIG``, else ``/etc/backup-agent`` for root, else
``~/.config/backup-agent``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .crypto import KeyBundle
from .errors import AgentError, Busy, CacheSpaceError, NotRegistered, UsageError

__all__ = [
    "AgentConfig",
    "ConfigDir",
    "default_config_dir",
    "check_cache_dir",
    "write_private",
    "FileLock",
]

CONFIG_FORMAT = "backup-agent-config/1"
NETWORK_FILESYSTEMS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "fuse.sshfs",
    "sshfs",
    "9p",
    "afs",
    "ceph",
    "glusterfs",
    "fuse.glusterfs",
    "davfs",
    "fuse.davfs2",
    "fuse.rclone",
    "fuse.s3fs",
    "lustre",
    "gpfs",
}


def default_config_dir() -> Path:
    env = os.environ.get("BACKUP_AGENT_CONFIG")
    if env:
        return Path(env).expanduser()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/etc/backup-agent")
    return Path.home() / ".config" / "backup-agent"


def write_private(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Write atomically (temp + fsync + rename) with ``mode`` from the first byte."""
    if isinstance(data, str):
        data = data.encode()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _mount_fstype(path: Path) -> str | None:
    """Filesystem type of the mount holding ``path`` (Linux /proc/mounts), or None."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    best, fstype = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, fstype = mount, parts[2]
    return fstype


def check_cache_dir(path: Path) -> Path:
    """Create the cache folder if needed and prove it is local and writable."""
    path = Path(path).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CacheSpaceError(
            f"The cache folder {path} cannot be created: {exc.strerror or exc}. Choose "
            "another one with --cache-dir."
        ) from exc
    fstype = _mount_fstype(path)
    if fstype in NETWORK_FILESYSTEMS:
        raise CacheSpaceError(
            f"The cache folder {path} is on a network file system ({fstype}). The cache must "
            "be on a local disk; choose another one with --cache-dir."
        )
    probe = path / f".write-test-{secrets.token_hex(4)}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise CacheSpaceError(
            f"The cache folder {path} is not writable: {exc.strerror or exc}. Choose another "
            "one with --cache-dir."
        ) from exc
    return path


@dataclass
class AgentConfig:
    portal_url: str
    machine_id: str
    machine_name: str
    token: str
    vault_id: str = ""
    vault_name: str = ""
    subscription: str = ""
    resource_group: str = ""
    region: str = ""
    cache_dir: str = ""
    proxy: str | None = None
    registered_at: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": CONFIG_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> AgentConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def _bundle_to_json(bundle: KeyBundle) -> dict:
    return {
        "chunk_key": base64.b64encode(bundle.chunk_key).decode(),
        "id_key": base64.b64encode(bundle.id_key).decode(),
        "manifest_key": base64.b64encode(bundle.manifest_key).decode(),
    }


def _bundle_from_json(d: dict) -> KeyBundle:
    return KeyBundle(
        base64.b64decode(d["chunk_key"]),
        base64.b64decode(d["id_key"]),
        base64.b64decode(d["manifest_key"]),
    )


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class FileLock:
    """An exclusive ``fcntl.flock`` on a file; the holder's pid is written into it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, blocking: bool = False) -> bool:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        with contextlib.suppress(OSError):
            return self.path.read_text().strip()
        return ""

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class ConfigDir:
    """Reads and writes the files of one configuration folder."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path).expanduser().absolute() if path else default_config_dir()

    # ------------------------------------------------------------------ paths
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def keys_file(self) -> Path:
        return self.path / "keys.json"

    @property
    def document_file(self) -> Path:
        return self.path / "document.json"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def log_file(self) -> Path:
        return self.path / "agent.log"

    @property
    def unlocked_dir(self) -> Path:
        return self.path / "unlocked"

    def ensure(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.path, 0o700)
        except OSError as exc:
            raise UsageError(
                f"The configuration folder {self.path} cannot be created: "
                f"{exc.strerror or exc}. Choose another with --config-dir."
            ) from exc

    # ------------------------------------------------------------------ config
    def exists(self) -> bool:
        return self.config_file.exists()

    def load(self) -> AgentConfig:
        try:
            raw = self.config_file.read_text()
        except FileNotFoundError:
            raise NotRegistered(
                f"This machine is not registered (no configuration in {self.path}). Register "
                "it first: backup-agent register --credentials <vault credentials file>"
            ) from None
        except OSError as exc:
            raise NotRegistered(
                f"The configuration {self.config_file} cannot be read: {exc.strerror or exc}."
            ) from exc
        try:
            data = json.loads(raw)
            if data.get("format") != CONFIG_FORMAT:
                raise ValueError("unknown format")
            cfg = AgentConfig.from_dict(data)
            if not (cfg.portal_url and cfg.machine_id and cfg.token):
                raise ValueError("incomplete")
        except (ValueError, TypeError, AttributeError) as exc:
            raise NotRegistered(
                f"The configuration {self.config_file} is damaged ({exc}). Register the machine "
                "again: backup-agent register --reregister --credentials <file>"
            ) from exc
        return cfg

    def save(self, cfg: AgentConfig) -> None:
        self.ensure()
        write_private(self.config_file, json.dumps(cfg.to_dict(), indent=2) + "\n")

    # ------------------------------------------------------------------ keys
    def save_keys(self, machine: str, wrapped: bytes, bundle: KeyBundle, uploaded: bool) -> None:
        self.ensure()
        doc = {
            "machine": machine,
            "wrapped": base64.b64encode(wrapped).decode(),
            "keys": _bundle_to_json(bundle),
            "uploaded": uploaded,
        }
        write_private(self.keys_file, json.dumps(doc, indent=2) + "\n")

    def load_keys_doc(self) -> dict | None:
        try:
            return json.loads(self.keys_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise NotRegistered(f"The key file {self.keys_file} cannot be read: {exc}.") from exc

    def load_keys(self) -> KeyBundle:
        doc = self.load_keys_doc()
        if doc is None:
            from .errors import PassphraseError

            raise PassphraseError(
                "This machine's encryption keys are not unlocked on this computer (no "
                f"{self.keys_file}). Run: backup-agent unlock (it asks for the passphrase)."
            )
        try:
            return _bundle_from_json(doc["keys"])
        except (KeyError, ValueError, TypeError) as exc:
            raise NotRegistered(f"The key file {self.keys_file} is damaged: {exc}.") from exc

    def wrapped_keys(self) -> bytes | None:
        doc = self.load_keys_doc()
        if not doc or not doc.get("wrapped"):
            return None
        return base64.b64decode(doc["wrapped"])

    def mark_keys_uploaded(self) -> None:
        doc = self.load_keys_doc()
        if doc is not None and not doc.get("uploaded"):
            doc["uploaded"] = True
            write_private(self.keys_file, json.dumps(doc, indent=2) + "\n")

    # ------------------------------------------------------------------ other machines
    def _unlocked_file(self, machine: str) -> Path:
        return self.unlocked_dir / (_SAFE_NAME.sub("_", machine.lower()) + ".json")

    def save_unlocked(self, machine: str, bundle: KeyBundle) -> Path:
        self.ensure()
        self.unlocked_dir.mkdir(mode=0o700, exist_ok=True)
        path = self._unlocked_file(machine)
        write_private(path, json.dumps({"machine": machine, "keys": _bundle_to_json(bundle)}))
        return path

    def unlocked_names(self) -> list[str]:
        """Machines whose keys are unlocked here (reported to the portal, no keys)."""
        names = []
        if self.unlocked_dir.is_dir():
            for path in sorted(self.unlocked_dir.glob("*.json")):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    names.append(str(json.loads(path.read_text())["machine"]))
        return names

    def load_unlocked(self, machine: str) -> KeyBundle | None:
        try:
            doc = json.loads(self._unlocked_file(machine).read_text())
            return _bundle_from_json(doc["keys"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            raise AgentError(f"The unlocked keys of {machine} cannot be read: {exc}.") from exc

    # ------------------------------------------------------------------ document & state
    def load_document(self) -> tuple[dict | None, str | None]:
        try:
            doc = json.loads(self.document_file.read_text())
            return doc.get("document"), doc.get("etag")
        except (OSError, ValueError, AttributeError):
            return None, None

    def save_document(self, document: dict, etag: str | None) -> None:
        self.ensure()
        write_private(
            self.document_file, json.dumps({"etag": etag, "document": document}, indent=2)
        )

    def load_state(self) -> dict:
        try:
            data = json.loads(self.state_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def save_state(self, state: dict) -> None:
        self.ensure()
        write_private(self.state_file, json.dumps(state, indent=2))

    # ------------------------------------------------------------------ locks
    def lock(self, name: str, what: str) -> FileLock:
        """Take ``<name>.lock`` or raise ``Busy`` naming the holder."""
        self.ensure()
        lock = FileLock(self.path / f"{name}.lock")
        if not lock.acquire():
            holder = lock.holder()
            raise Busy(
                f"{what} (process {holder or 'unknown'} holds {lock.path})."
                if holder
                else f"{what} ({lock.path} is locked)."
            )
        return lock

    def lock_blocking(self, name: str) -> FileLock:
        """Wait for ``<name>.lock`` (short critical sections shared between processes)."""
        self.ensure()
        lock = FileLock(self.path / f"{name}.lock")
        lock.acquire(blocking=True)
        return lock

    def is_locked(self, name: str) -> str | None:
        """The pid holding ``<name>.lock``, or None when it is free."""
        path = self.path / f"{name}.lock"
        if not path.exists():
            return None
        lock = FileLock(path)
        if lock.acquire():
            lock.release()
            return None
        return lock.holder() or "?"

    def cache_dir(self, cfg: AgentConfig) -> Path:
        """The engine's cache folder for this machine (file cache, staging)."""
        from .platform import default_cache_dir

        base = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        return base / cfg.machine_id
