import pytest
from django.urls import reverse

from agents.models import AgentCommand, Job, Machine
from portal.models import AuditEvent
from vaults.models import Pack, RecoveryPoint, Vault

pytestmark = pytest.mark.django_db


@pytest.fixture
def machine(personas, settings, tmp_path):
    settings.BLOB_ROOT = tmp_path
    vault = Vault.objects.create(
        tenant=personas.tenant_a,
        subscription=personas.sub_a,
        resource_group=personas.rg_a,
        name="vault-a",
        region_id="westeurope",
        state="succeeded",
    )
    return Machine.objects.create(
        tenant=personas.tenant_a,
        vault=vault,
        name="web-01",
        token_key_id="a1",
        token_hash="x",
        agent_version="0.0.9",
        os_name="Debian 12",
    )


def test_protected_servers_jobs_and_items_pages(personas, client_for, machine):
    job = Job.objects.create(
        tenant=personas.tenant_a,
        vault=machine.vault,
        machine=machine,
        kind="backup",
        trigger="scheduled",
        state="failed",
        error="disk on fire",
    )
    reader = client_for(personas.reader)
    servers = reader.get(reverse("vault-infrastructure", args=[machine.vault.pk])).content.decode()
    assert "web-01" in servers and "Update available" in servers and "Offline" in servers
    jobs = reader.get(
        reverse("vault-jobs", args=[machine.vault.pk]), {"status": "failed"}
    ).content.decode()
    assert f'data-job="{job.pk}"' in jobs and "Failed" in jobs
    none = reader.get(
        reverse("vault-jobs", args=[machine.vault.pk]), {"status": "completed"}
    ).content.decode()
    assert f'data-job="{job.pk}"' not in none
    detail = reader.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "disk on fire" in detail


def test_back_up_now_from_the_portal_queues_a_command(personas, client_for, machine):
    reader = client_for(personas.reader)
    page = reader.get(reverse("machine-detail", args=[machine.pk])).content.decode()
    assert 'value="backup"' not in page and "Your role cannot start backups." in page
    assert (
        reader.post(reverse("machine-detail", args=[machine.pk]), {"action": "backup"}).status_code
        == 403
    )
    assert not AgentCommand.objects.exists()
    operator = client_for(personas.operator)
    operator.post(reverse("machine-detail", args=[machine.pk]), {"action": "backup"})
    assert AgentCommand.objects.get().kind == "backup"


def test_deleting_a_server_with_data_needs_the_pin(personas, client_for, machine):
    from vaults.services import generate_security_pin

    RecoveryPoint.objects.create(
        tenant=personas.tenant_a,
        vault=machine.vault,
        machine=machine,
        kind="adhoc",
        taken_at=machine.registered_at,
        manifest="m",
    )
    Pack.objects.create(vault=machine.vault, machine=machine, name="a" * 32, size=10)
    owner = client_for(personas.owner)
    url = reverse("machine-detail", args=[machine.pk])
    response = owner.post(url, {"action": "delete", "pin": "12345678"}, follow=True)
    assert "security PIN" in response.content.decode()
    assert Machine.objects.filter(pk=machine.pk).exists()

    class Request:
        user = personas.owner
        tenant = personas.tenant_a
        META = {}

    pin = generate_security_pin(Request(), machine.vault)
    owner.post(url, {"action": "delete", "pin": pin})
    assert not Machine.objects.filter(pk=machine.pk).exists()
    assert AuditEvent.objects.filter(action="machine.delete").exists()


def test_usage_shows_what_the_vault_stores(personas, client_for, machine):
    Vault.objects.filter(pk=machine.vault_id).update(storage_bytes=5 * 1024 * 1024)
    Machine.objects.filter(pk=machine.pk).update(storage_bytes=5 * 1024 * 1024)
    page = (
        client_for(personas.reader)
        .get(reverse("vault-usage", args=[machine.vault_id]))
        .content.decode()
    )
    assert "5.0\xa0MB" in page and "web-01" in page and "No backup data stored yet." not in page
