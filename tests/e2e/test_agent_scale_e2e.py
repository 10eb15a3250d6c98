"""Round trips through the real portal and storage (embedded and, in the services pass,
Azurite): unusual names, empty files and folders, symlinks, a 2 GiB sparse-ish file and
50,000 small files; then damaged storage: a flipped byte and a deleted pack."""

import hashlib
import os
import random
from pathlib import Path

import pytest

from tests.e2e.test_agent_e2e import Agent, portal  # noqa: F401 - the module's portal fixture

pytestmark = [pytest.mark.services, pytest.mark.slow]
MiB = 1024 * 1024


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            h.update(block)
    return h.hexdigest()


def listing(top: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = str(path.relative_to(top))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777)
            else:
                out[rel] = ("file", st.st_mode & 0o7777, st.st_size, st.st_mtime_ns)
    return out


def test_names_sparse_file_and_fifty_thousand_files(portal, tmp_path):  # noqa: F811
    src = tmp_path / "data"
    many = src / "many"
    many.mkdir(parents=True)
    for i in range(50_000):
        folder = many / f"d{i // 1000:02d}"
        if i % 1000 == 0:
            folder.mkdir()
        (folder / f"f{i:05d}.txt").write_bytes(b"small file %d\n" % i)
    (src / "ünïcødé 文件 🙂.txt").write_text("unicode ✓\n", encoding="utf-8")
    (src / ("long-" + "n" * 240 + ".txt")).write_bytes(b"long name\n")
    (src / "empty.txt").write_bytes(b"")
    (src / "empty folder").mkdir()
    os.symlink("ünïcødé 文件 🙂.txt", src / "link")
    sparse = src / "disk.img"
    with open(sparse, "wb") as f:  # 2 GiB, mostly holes, a little data at a few places
        for offset in (0, 700 * MiB, 2047 * MiB):
            f.seek(offset)
            f.write(random.Random(offset).randbytes(MiB))
        f.truncate(2048 * MiB)

    agent = Agent(portal, tmp_path, "scale-01")
    agent.register()
    portal.assign_policy(agent.name, [str(src)])
    agent.ok("backup", timeout=900)
    target = tmp_path / "restored"
    agent.ok("restore", "--point", "latest", "--target", target, timeout=900)
    restored = target / str(src).lstrip("/")
    assert listing(restored) == listing(src)
    assert digest(restored / "disk.img") == digest(sparse)
    assert (restored / "many" / "d49" / "f49999.txt").read_bytes() == b"small file 49999\n"


def _pack_blobs(portal) -> dict:
    return {
        name: data
        for name, data in portal.blobs().items()
        if "/packs/" in name or name.startswith("packs/")
    }


def _damage(portal, flip: str, delete: str) -> None:
    conn = portal.server.env.get("AZURE_STORAGE_CONNECTION_STRING")
    if conn:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(conn)
        container, blob = flip.split("/", 1)
        client = service.get_blob_client(container, blob)
        data = bytearray(client.download_blob().readall())
        data[len(data) // 3] ^= 0xFF
        client.upload_blob(bytes(data), overwrite=True)
        container, blob = delete.split("/", 1)
        service.get_blob_client(container, blob).delete_blob()
    else:
        root = Path(portal.server.env["PORTAL_DATA_DIR"]) / "blobs"
        path = root / flip
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0xFF
        path.write_bytes(bytes(data))
        (root / delete).unlink()


def test_flipped_byte_and_deleted_pack_are_reported_and_the_rest_restored(portal, tmp_path):  # noqa: F811
    vault = portal.new_vault("damage-e2e")
    src = tmp_path / "data"
    src.mkdir()
    rnd = random.Random(7)
    for i in range(8):
        (src / f"part-{i}.bin").write_bytes(rnd.randbytes(9 * MiB))
    agent = Agent(portal, tmp_path, "damage-01")
    agent.register(portal.credentials("damage-01", vault))
    portal.assign_policy(agent.name, [str(src)])
    before = set(_pack_blobs(portal))
    agent.ok("backup", timeout=300)
    packs = sorted(set(_pack_blobs(portal)) - before)
    assert len(packs) >= 3, packs
    _damage(portal, flip=packs[0], delete=packs[-1])

    target = tmp_path / "restored"
    result = agent.run("restore", "--point", "latest", "--target", target, timeout=300)
    assert result.returncode == 11, result.stdout + result.stderr
    reported = {name for name in (f"part-{i}.bin" for i in range(8)) if name in result.stderr}
    assert reported and len(reported) < 8, result.stderr
    restored = target / str(src).lstrip("/")
    intact = [f"part-{i}.bin" for i in range(8) if f"part-{i}.bin" not in reported]
    for name in intact:
        assert (restored / name).read_bytes() == (src / name).read_bytes(), name
