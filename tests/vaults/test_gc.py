from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Machine
from policies.models import BackupPolicy
from vaults import gc
from vaults.models import Pack, RecoveryPoint, UploadLease, Vault
from vaults.storage import get_blob_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(personas, settings, tmp_path):
    settings.BLOB_ROOT = tmp_path
    settings.AZURE_STORAGE_CONNECTION_STRING = None
    vault = Vault.objects.create(
        tenant=personas.tenant_a,
        subscription=personas.sub_a,
        resource_group=personas.rg_a,
        name="v",
        region_id="westeurope",
        state="succeeded",
        soft_delete_days=14,
    )
    policy = BackupPolicy.objects.create(
        tenant=personas.tenant_a,
        vault=vault,
        name="p",
        schedule={"frequency": "daily", "times": ["02:00"]},
        retention={"daily": {"days": 7}},
    )
    machine = Machine.objects.create(
        tenant=personas.tenant_a,
        vault=vault,
        name="m",
        token_key_id="k",
        token_hash="x",
        policy=policy,
        time_zone="Europe/Berlin",
    )
    get_blob_store().create_container(vault.container_name)
    return vault, machine


def pack(vault, machine, name, size=100, age=timedelta(days=10)):
    store = get_blob_store()
    store_url_path = vault.container_name
    (store.root / store_url_path / "packs").mkdir(parents=True, exist_ok=True)
    (store.root / store_url_path / "packs" / name).write_bytes(b"x" * size)
    p = Pack.objects.create(vault=vault, machine=machine, name=name, size=size)
    Pack.objects.filter(pk=p.pk).update(created_at=timezone.now() - age)
    Vault.objects.filter(pk=vault.pk).update(storage_bytes=vault.storage_bytes + size)
    vault.refresh_from_db()
    return p


def point(vault, machine, days_ago, packs):
    rp = RecoveryPoint.objects.create(
        tenant=vault.tenant,
        vault=vault,
        machine=machine,
        kind="scheduled",
        taken_at=timezone.now() - timedelta(days=days_ago),
        manifest="m",
    )
    rp.packs.set(packs)
    return rp


def test_expired_points_are_soft_deleted_then_purged_and_their_packs_collected(setup):
    vault, machine = setup
    shared, old_only, young = (pack(vault, machine, c * 32) for c in "abc")
    Pack.objects.filter(pk=young.pk).update(created_at=timezone.now())
    old = point(vault, machine, 20, [shared, old_only])
    new = point(vault, machine, 1, [shared])
    assert gc.apply_retention(machine) == 1
    assert list(RecoveryPoint.objects.filter(machine=machine)) == [new]
    assert RecoveryPoint.all_points.get(pk=old.pk).purge_after > timezone.now() + timedelta(days=13)
    # soft-deleted data is still protected
    assert gc.collect_garbage(vault) == 0
    assert Pack.objects.count() == 3
    later = timezone.now() + timedelta(days=15)
    assert gc.purge_points(later) == 1
    freed = gc.collect_garbage(vault, later)
    # the old point's own pack, and the once-young pack nobody ever referenced (now past grace)
    assert freed == 200 and set(Pack.objects.values_list("name", flat=True)) == {"a" * 32}
    assert not (get_blob_store().root / vault.container_name / "packs" / ("b" * 32)).exists()
    vault.refresh_from_db()
    assert vault.storage_bytes == 100


def test_packs_of_an_open_upload_or_a_young_backup_are_kept(setup):
    vault, machine = setup
    leased = pack(vault, machine, "d" * 32)
    UploadLease.objects.create(
        vault=vault,
        machine=machine,
        blob_name=leased.blob_name,
        size=100,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    pack(vault, machine, "e" * 32, age=timedelta(hours=1))
    assert gc.collect_garbage(vault) == 0
    assert Pack.objects.count() == 2


def test_the_newest_point_survives_when_backups_stop(setup):
    vault, machine = setup
    only = point(vault, machine, 400, [])
    assert gc.apply_retention(machine) == 0
    assert RecoveryPoint.objects.get() == only
    assert RecoveryPoint.objects.get().kept_by == ["latest"]
