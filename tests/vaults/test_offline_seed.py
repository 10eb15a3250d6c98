"""An initial backup written offline by the agent engine, imported by the worker."""

import os

import pytest
from django.urls import reverse

from agents.models import Job
from backup_agent.backup import run_backup
from backup_agent.crypto import KeyBundle
from backup_agent.repository import LocalRepository
from tests.agents.test_agent_api import local_blobs, registered, vault  # noqa: F401 - fixtures
from vaults.models import Chunk, RecoveryPoint
from vaults.storage import get_blob_store

pytestmark = pytest.mark.django_db(transaction=True)


def test_offline_seed_is_imported_as_an_offline_recovery_point(
    personas, client_for, vault, settings, tmp_path
):  # noqa: F811
    settings.OFFLINE_SEED_DIR = tmp_path / "seeds"
    machine, agent = registered(vault, "fileserver")
    source = tmp_path / "data"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (source / "notes.txt").write_text("quarterly numbers\n" * 1000)
    keys = KeyBundle.generate()
    staging = settings.OFFLINE_SEED_DIR / str(machine.pk)
    with LocalRepository(staging) as seed:
        result = run_backup(seed, keys, [str(source)], cache_dir=tmp_path / "cache")
        chunk_ids = [ref.id for name in seed.list_packs() for ref in seed.chunks_in_pack(name)]
        packs = seed.list_packs()
    assert chunk_ids and result.stats["files"] == 2

    operator = client_for(personas.operator)
    response = operator.post(
        reverse("machine-detail", args=[machine.pk]), {"action": "offline_import"}
    )
    job = Job.objects.get(kind="offline_import")
    assert response.status_code == 302 and response.url == reverse("job-detail", args=[job.pk])
    assert job.state == "completed", job.error
    point = RecoveryPoint.objects.get(machine=machine)
    assert point.kind == "offline" and point.files == 2 and job.recovery_point == point
    store = get_blob_store()
    for name, size in packs.items():
        assert store.blob_size(vault.container_name, f"packs/{name}") == size
    assert Chunk.objects.filter(machine=machine).count() == len(set(chunk_ids))
    # the next network backup finds every chunk already in the vault
    assert set(agent.post("chunks/lookup/", {"ids": chunk_ids}).json()["present"]) == set(chunk_ids)


def test_import_without_a_seed_says_where_to_put_it(
    personas, client_for, vault, settings, tmp_path
):  # noqa: F811
    settings.OFFLINE_SEED_DIR = tmp_path / "seeds"
    machine, _agent = registered(vault, "fileserver")
    response = client_for(personas.operator).post(
        reverse("machine-detail", args=[machine.pk]), {"action": "offline_import"}, follow=True
    )
    assert (
        f"No offline seed for fileserver at {tmp_path / 'seeds' / str(machine.pk)}"
        in response.content.decode()
    )
    assert not Job.objects.exists()
