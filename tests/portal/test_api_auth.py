from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from portal.models import AccessToken, AuditEvent, ResourceGroup
from portal.services import create_access_token

pytestmark = pytest.mark.django_db


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_access_token_works_and_fixes_the_tenant(personas, client):
    _token, plain = create_access_token(personas.owner, personas.tenant_a, name="ci", days=5)
    assert plain.startswith("bpp_")
    stored = AccessToken.objects.get()
    assert plain.split("_", 2)[2] not in stored.secret_hash
    response = client.get("/api/v1/subscriptions/", **bearer(plain))
    assert response.status_code == 200
    assert [s["name"] for s in response.json()["results"]] == ["contoso-prod"]
    created = client.post(
        "/api/v1/resource-groups/",
        {"name": "from-api", "subscription_id": str(personas.sub_a.pk), "region": "japaneast"},
        content_type="application/json",
        **bearer(plain),
    )
    assert created.status_code == 201, created.content
    assert created.json()["region"] == "japaneast"
    stored.refresh_from_db()
    assert stored.last_used_at is not None


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: setattr(t, "expires_at", timezone.now() - timedelta(seconds=1)), "expired"),
        (lambda t: setattr(t, "revoked_at", timezone.now()), "revoked"),
    ],
)
def test_expired_or_revoked_token_is_refused(personas, client, mutate, message):
    token, plain = create_access_token(personas.owner, personas.tenant_a, name="x", days=1)
    mutate(token)
    token.save()
    response = client.get("/api/v1/subscriptions/", **bearer(plain))
    assert response.status_code == 401
    assert message in response.json()["detail"]


def test_forged_and_malformed_tokens(personas, client):
    _token, plain = create_access_token(personas.owner, personas.tenant_a, name="x", days=1)
    forged = plain[:-4] + "AAAA"
    assert client.get("/api/v1/subscriptions/", **bearer(forged)).status_code == 401
    assert client.get("/api/v1/subscriptions/", **bearer("bpp_nothing_here")).status_code == 401
    assert client.get("/api/v1/subscriptions/", **bearer("garbage")).status_code == 401
    assert client.get("/api/v1/subscriptions/").status_code in (401, 403)


def test_bad_input_is_refused_and_writes_nothing(personas, client_for):
    owner = client_for(personas.owner)
    before = ResourceGroup.objects.count()
    bad_json = owner.post("/api/v1/resource-groups/", "{not json", content_type="application/json")
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["detail"]
    too_long = owner.post(
        "/api/v1/resource-groups/",
        {"name": "x" * 200, "subscription_id": str(personas.sub_a.pk), "region": "westeurope"},
        content_type="application/json",
    )
    assert too_long.status_code == 400 and "name" in too_long.json()
    unknown_region = owner.post(
        "/api/v1/resource-groups/",
        {"name": "ok", "subscription_id": str(personas.sub_a.pk), "region": "moon"},
        content_type="application/json",
    )
    assert unknown_region.status_code == 400 and "region" in unknown_region.json()
    unknown_sub = owner.post(
        "/api/v1/resource-groups/",
        {
            "name": "ok",
            "subscription_id": "00000000-0000-0000-0000-000000000000",
            "region": "westeurope",
        },
        content_type="application/json",
    )
    assert unknown_sub.status_code == 404
    assert owner.get("/api/v1/resource-groups/not-a-uuid/").status_code == 404
    duplicate = owner.post(
        "/api/v1/resource-groups/",
        {"name": "RG-A", "subscription_id": str(personas.sub_a.pk), "region": "westeurope"},
        content_type="application/json",
    )
    assert duplicate.status_code == 400 and "already exists" in str(duplicate.json())
    assert ResourceGroup.objects.count() == before


def test_tokens_are_created_and_revoked_in_the_ui(personas, client_for):
    owner = client_for(personas.owner)
    page = owner.post("/account/tokens/", {"name": "automation", "days": 7})
    assert page.status_code == 200
    plain = page.context["new_token"]
    assert plain in page.content.decode()
    token = AccessToken.objects.get(name="automation")
    owner.post("/account/tokens/", {"revoke": token.pk})
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert owner.post("/account/tokens/", {"name": "x", "days": 9999}).status_code == 400
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"access_token.create", "access_token.revoke"} <= actions


def test_create_access_token_command(personas, capsys):
    call_command("create_access_token", personas.owner.email, "--days", "3")
    plain = capsys.readouterr().out.strip()
    assert plain.startswith("bpp_")
    assert AccessToken.objects.get(user=personas.owner).expires_at < timezone.now() + timedelta(
        days=3, seconds=5
    )


def test_login_is_rate_limited(personas, client, settings):
    settings.LOGIN_ATTEMPTS_PER_15_MINUTES = 3
    for _ in range(3):
        response = client.post(
            "/login/", {"username": personas.owner.username, "password": "wrong"}
        )
        assert response.status_code == 200
        assert "enter a correct" in response.content.decode().lower()
    blocked = client.post(
        "/login/", {"username": personas.owner.username, "password": "pw-Secret-123"}
    )
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.content.decode()


def test_directory_switcher(personas, client_for):
    from portal.models import Membership

    Membership.objects.create(tenant=personas.tenant_b, user=personas.owner)
    owner = client_for(personas.owner)
    home = owner.get("/")
    assert "Fabrikam" in home.content.decode() and "Contoso" in home.content.decode()
    owner.post("/directory/switch/", {"tenant": personas.tenant_b.pk})
    assert owner.get("/api/v1/subscriptions/").json()["results"] == []
    outsider = client_for(personas.reader)
    assert outsider.post("/directory/switch/", {"tenant": personas.tenant_b.pk}).status_code == 404


def test_seed_demo_is_idempotent(db, capsys):
    from portal.models import Membership, Tenant

    call_command("seed_demo")
    call_command("seed_demo")
    assert Tenant.objects.filter(domain="contoso").count() == 1
    assert Membership.objects.count() == 2
    assert "owner@contoso.example" in capsys.readouterr().out


def test_openapi_schema_and_docs_are_served_offline(personas, client_for):
    owner = client_for(personas.owner)
    schema = owner.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/resource-groups/" in schema.content.decode()
    docs = owner.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower()


def test_the_admin_portal_is_for_platform_operators(personas, client_for):
    personas.platform.is_superuser = True
    personas.platform.save()
    operator = client_for(personas.platform)
    for url in (
        "/admin/",
        "/admin/portal/tenant/",
        "/admin/vaults/vault/",
        "/admin/agents/agentrelease/",
        "/admin/agents/machine/",
        "/admin/agents/job/",
    ):
        assert operator.get(url).status_code == 200, url
    assert client_for(personas.owner).get("/admin/").status_code == 302  # to the admin sign-in
