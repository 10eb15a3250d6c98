"""Every resource page and every API detail endpoint, tried as another tenant's owner.

Routes are discovered from the URL configuration, so a new view that takes a resource id
fails here until it is added to OBJECTS, and then it is checked like the rest.
"""

import pytest
from django.urls import NoReverseMatch, get_resolver, reverse

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
    "alert-": "alert",
    "vault-webhook-": "webhook",
    "audit-event-": "audit_event",
    "role-assignment-": "role_assignment",
}
# Not tenant data: the region catalogue is the same for everyone.
SHARED_ROUTES = {"api-region-detail"}


def resource_routes(api: bool = False):
    routes = set()
    reverse_dict = get_resolver().reverse_dict
    for name in list(reverse_dict):
        if not isinstance(name, str) or name.startswith("api-") != api:
            continue
        for _possibility, pattern, _defaults, converters in reverse_dict.getlist(name):
            # HTML routes use the uuid converter; DRF's router writes regex groups.
            if type(converters.get("pk")).__name__ == "UUIDConverter" or "(?P<pk>" in pattern:
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
    from vaults.models import Alert, VaultWebhook

    alert = Alert.objects.create(
        tenant=personas.tenant_a,
        vault=vault,
        machine=machine,
        kind="backup_failed",
        severity="critical",
        key=f"backup_failed:{machine.pk}",
        subject_id=str(machine.pk),
        raised_at=job.started_at,
        last_occurred_at=job.started_at,
    )
    webhook = VaultWebhook.objects.create(
        tenant=personas.tenant_a, vault=vault, url="https://hooks.example/x", secret="s"
    )
    from portal import audit

    event = audit.record(None, "vault.create", vault, actor=personas.owner)
    from portal.models import RoleAssignment

    return {
        "role_assignment": RoleAssignment.objects.filter(subscription=personas.sub_a).first(),
        "audit_event": event,
        "alert": alert,
        "webhook": webhook,
        "command": command,
        "subscription": personas.sub_a,
        "group": personas.rg_a,
        "vault": vault,
        "machine": machine,
        "job": job,
        "policy": policy,
    }


def url_for(name, obj):
    try:
        return reverse(name, kwargs={"pk": obj.pk})
    except NoReverseMatch:  # nested under its vault
        return reverse(name, kwargs={"pk": obj.pk, "vault_pk": obj.vault_id})


def object_for(name, objects):
    for prefix, key in sorted(OBJECTS.items(), key=lambda item: -len(item[0])):
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
    api_routes = [name for name in resource_routes(api=True) if name not in SHARED_ROUTES]
    assert len(api_routes) >= 15, api_routes
    for name in api_routes:
        url = url_for(name, object_for(name.removeprefix("api-"), tenant_a_objects))
        statuses = {
            method: getattr(outsider, method)(url, {}, content_type="application/json").status_code
            for method in ("get", "patch", "put", "delete", "post")
        }
        # 405 answers before any lookup; every method the route has must say 404
        assert set(statuses.values()) <= {404, 405} and 404 in statuses.values(), (url, statuses)
    assert Vault.objects.get(pk=tenant_a_objects["vault"].pk).state == "succeeded"
