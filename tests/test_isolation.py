"""Every resource page and every API detail endpoint, tried as another tenant's owner.

Routes are discovered from the URL configuration, so a new view that takes a resource id
fails here until it is added to OBJECTS, and then it is checked like the rest.
"""

import pytest
from django.urls import get_resolver, reverse

from agents.models import AgentCommand, Job, Machine
from vaults.models import Vault

pytestmark = pytest.mark.django_db

# route-name prefix → which of tenant A's objects the route takes
OBJECTS = {
    "subscription-": "subscription",
    "resource-group-": "group",
    "vault-": "vault",
    "machine-": "machine",
    "job-": "job",
    "policy-": "policy",
    "command-": "command",
}


def resource_routes(api: bool = False):
    routes = set()
    reverse_dict = get_resolver().reverse_dict
    for name in list(reverse_dict):
        if not isinstance(name, str) or name.startswith("api-") != api:
            continue
        for _possibility, _pattern, _defaults, converters in reverse_dict.getlist(name):
            if type(converters.get("pk")).__name__ == "UUIDConverter":
                routes.add(name)
    return sorted(routes)


@pytest.fixture
def tenant_a_objects(personas):
    from policies.models import BackupPolicy

    vault = Vault.objects.create(
        tenant=personas.tenant_a,
        subscription=personas.sub_a,
        resource_group=personas.rg_a,
        name="vault-a",
        region_id="westeurope",
        state="succeeded",
    )
    policy = BackupPolicy.objects.create(
        tenant=personas.tenant_a,
        vault=vault,
        name="daily",
        schedule={"frequency": "daily", "times": ["02:00"]},
        retention={"daily": {"days": 7}},
    )
    machine = Machine.objects.create(
        tenant=personas.tenant_a,
        vault=vault,
        name="web-01",
        token_key_id="a1",
        token_hash="x",
        policy=policy,
    )
    job = Job.objects.create(
        tenant=personas.tenant_a, vault=vault, machine=machine, kind="backup", trigger="adhoc"
    )
    command = AgentCommand.objects.create(
        machine=machine, kind="browse", payload={"path": ""}, expires_at=job.started_at
    )
    return {
        "command": command,
        "subscription": personas.sub_a,
        "group": personas.rg_a,
        "vault": vault,
        "machine": machine,
        "job": job,
        "policy": policy,
    }


def object_for(name, objects):
    for prefix, key in OBJECTS.items():
        if name.startswith(prefix):
            return objects[key]
    raise AssertionError(f"Route {name!r} takes a resource id: add it to OBJECTS in {__name__}")


def test_every_resource_page_is_404_for_another_tenant(personas, client_for, tenant_a_objects):
    insider, outsider = client_for(personas.owner), client_for(personas.owner_b)
    routes = resource_routes()
    assert len(routes) >= 20
    for name in routes:
        url = reverse(name, kwargs={"pk": object_for(name, tenant_a_objects).pk})
        assert insider.get(url).status_code in (200, 302), url
        assert outsider.get(url).status_code == 404, url
        data = {
            "action": "delete",
            "section": "pin",
            "email": "owner_b@fabrikam.example",
            "role": "owner",
        }
        # 405 comes before any lookup, so it says nothing about the object either
        assert outsider.post(url, data).status_code in (404, 405), url
    assert Machine.objects.filter(pk=tenant_a_objects["machine"].pk).exists()
    assert tenant_a_objects["machine"].commands.count() == 1  # only the fixture's own


def test_every_api_detail_is_404_for_another_tenant(personas, client_for, tenant_a_objects):
    outsider = client_for(personas.owner_b)
    for name in resource_routes(api=True):
        url = reverse(
            name, kwargs={"pk": object_for(name.removeprefix("api-"), tenant_a_objects).pk}
        )
        for method in ("get", "patch", "put", "delete", "post"):
            response = getattr(outsider, method)(url, {}, content_type="application/json")
            assert response.status_code in (404, 405), (method, url, response.status_code)
            if response.status_code == 405:
                assert outsider.get(url).status_code == 404
    assert Vault.objects.get(pk=tenant_a_objects["vault"].pk).state == "succeeded"
