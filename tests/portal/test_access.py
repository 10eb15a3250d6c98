"""Tenant isolation and roles, tried on every HTML page and API endpoint."""

import json

import pytest
from django.urls import reverse

from portal.models import AuditEvent, ResourceGroup, RoleAssignment

pytestmark = pytest.mark.django_db


def test_every_api_endpoint_hides_another_tenants_objects(personas, client_for):
    outsider = client_for(personas.owner_b)
    p = personas
    details = [
        f"/api/v1/subscriptions/{p.sub_a.pk}/",
        f"/api/v1/resource-groups/{p.rg_a.pk}/",
        f"/api/v1/role-assignments/{RoleAssignment.objects.filter(subscription=p.sub_a).first().pk}/",
    ]
    for url in details:
        assert outsider.get(url).status_code == 404, url
        assert outsider.delete(url).status_code in (404, 405), url
    lists = [
        "/api/v1/subscriptions/",
        "/api/v1/resource-groups/",
        "/api/v1/role-assignments/",
        "/api/v1/audit-events/",
    ]
    for url in lists:
        body = outsider.get(url).json()
        text = json.dumps(body)
        assert str(p.sub_a.pk) not in text and "contoso" not in text, url
    response = outsider.post(
        "/api/v1/resource-groups/",
        {"name": "sneaky", "subscription_id": str(p.sub_a.pk), "region": "westeurope"},
        content_type="application/json",
    )
    assert response.status_code == 404
    response = outsider.post(
        "/api/v1/role-assignments/",
        {"scope": p.sub_a.path, "email": "owner_b@fabrikam.example", "role": "owner"},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert not ResourceGroup.objects.filter(name="sneaky").exists()
    assert outsider.get(f"/api/v1/audit-events/?scope={p.sub_a.path}").status_code == 404


def test_reader_can_read_but_not_write(personas, client_for):
    reader = client_for(personas.reader)
    page = reader.get(reverse("resource-group-detail", args=[personas.rg_a.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="delete"' not in html and "aria-disabled" in html
    assert (
        reader.post(
            reverse("resource-group-detail", args=[personas.rg_a.pk]), {"action": "delete"}
        ).status_code
        == 403
    )
    assert ResourceGroup.objects.filter(pk=personas.rg_a.pk).exists()
    iam = reader.post(
        reverse("subscription-iam", args=[personas.sub_a.pk]),
        {"email": "reader@contoso.example", "role": "owner"},
    )
    assert iam.status_code == 403
    api = reader.post(
        "/api/v1/resource-groups/",
        {"name": "nope", "subscription_id": str(personas.sub_a.pk), "region": "westeurope"},
        content_type="application/json",
    )
    assert api.status_code == 403
    assert reader.delete(f"/api/v1/resource-groups/{personas.rg_a.pk}/").status_code == 403
    assert not ResourceGroup.objects.filter(name="nope").exists()
    assert not RoleAssignment.objects.filter(user=personas.reader, role="owner").exists()


def test_roles_inherit_downward_and_containers_are_visible(personas, client_for):
    from portal.access import Action, can, scoped
    from portal.models import Membership, Region, Subscription

    p = personas
    other_rg = ResourceGroup.objects.create(
        tenant=p.tenant_a, subscription=p.sub_a, name="rg-other", region=Region.objects.first()
    )
    guest = pytest.importorskip("tests.conftest").make_user("guest@contoso.example")
    Membership.objects.create(tenant=p.tenant_a, user=guest)
    RoleAssignment.objects.create(
        tenant=p.tenant_a,
        user=guest,
        role="contributor",
        subscription=p.sub_a,
        resource_group=p.rg_a,
    )
    assert can(guest, p.tenant_a, p.rg_a, Action.WRITE)
    assert not can(guest, p.tenant_a, other_rg, Action.READ)
    assert not can(guest, p.tenant_a, p.sub_a, Action.WRITE)
    assert list(scoped(Subscription.objects.all(), guest, p.tenant_a)) == [p.sub_a]
    assert list(scoped(ResourceGroup.objects.all(), guest, p.tenant_a)) == [p.rg_a]
    assert list(scoped(ResourceGroup.objects.all(), p.operator, p.tenant_a, Action.WRITE)) == []
    assert set(scoped(ResourceGroup.objects.all(), p.platform, p.tenant_b)) == {p.rg_b}


def test_owner_manages_access_and_everything_is_audited(personas, client_for):
    p = personas
    owner = client_for(p.owner)
    url = reverse("resource-group-iam", args=[p.rg_a.pk])
    response = owner.post(
        url, {"email": "reader@contoso.example", "role": "contributor"}, REMOTE_ADDR="10.1.2.3"
    )
    assert response.status_code == 302
    assignment = RoleAssignment.objects.get(user=p.reader, role="contributor")
    assert assignment.resource_group == p.rg_a
    event = AuditEvent.objects.get(action="role_assignment.create")
    assert (
        event.actor == p.owner
        and event.ip_address == "10.1.2.3"
        and event.resource_path == p.rg_a.path
    )
    # someone outside the directory cannot be granted anything
    response = owner.post(url, {"email": "owner_b@fabrikam.example", "role": "reader"})
    assert response.status_code == 400 and "No member" in response.content.decode()
    owner.post(url, {"remove": assignment.pk})
    assert not RoleAssignment.objects.filter(pk=assignment.pk).exists()
    activity = owner.get(reverse("resource-group-activity", args=[p.rg_a.pk]))
    assert "role_assignment.delete" in activity.content.decode()
    reader_view = client_for(p.owner_b).get(f"/api/v1/audit-events/?scope={p.rg_a.path}")
    assert reader_view.status_code == 404


def test_last_subscription_owner_cannot_be_removed(personas, client_for):
    p = personas
    owner_assignment = RoleAssignment.objects.get(user=p.owner, role="owner")
    response = client_for(p.owner).delete(f"/api/v1/role-assignments/{owner_assignment.pk}/")
    assert response.status_code == 400
    assert "at least one owner" in response.json()["detail"][0]
