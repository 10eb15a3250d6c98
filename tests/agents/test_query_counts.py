"""List pages cost the same number of queries whatever the number of rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.models import Job, Machine
from policies.models import BackupPolicy
from vaults.models import Vault

pytestmark = pytest.mark.django_db


def add_rows(vault, policy, start, count):
    for i in range(start, start + count):
        machine = Machine.objects.create(
            tenant=vault.tenant,
            vault=vault,
            name=f"host-{i}",
            token_key_id=f"k{i}",
            token_hash="x",
            policy=policy,
        )
        Job.objects.create(
            tenant=vault.tenant, vault=vault, machine=machine, kind="backup", trigger="scheduled"
        )


def queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    "name",
    [
        "vault-jobs",
        "vault-infrastructure",
        "vault-backup-items",
        "vault-detail",
        "vault-usage",
        "vault-policies",
    ],
)
def test_vault_pages_have_a_constant_query_count(personas, client_for, name):
    vault = Vault.objects.create(
        tenant=personas.tenant_a,
        subscription=personas.sub_a,
        resource_group=personas.rg_a,
        name="v",
        region_id="westeurope",
        state="succeeded",
    )
    policy = BackupPolicy.objects.create(
        tenant=personas.tenant_a,
        vault=vault,
        name="p",
        items=["/srv"],
        schedule={"frequency": "daily", "times": ["02:00"]},
        retention={"daily": {"days": 7}},
    )
    client = client_for(personas.owner)
    url = reverse(name, args=[vault.pk])
    add_rows(vault, policy, 0, 2)
    queries(client, url)  # warm caches (latest release, session)
    few = queries(client, url)
    add_rows(vault, policy, 2, 15)
    assert queries(client, url) == few
