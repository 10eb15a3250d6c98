import json
import string
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from portal.models import AuditEvent, Notification
from vaults import services
from vaults.models import SecurityPin, Vault, VaultCredential

# Transactional: deployment is queued on commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def inline_tasks(settings, tmp_path):
    settings.TASKS_RUN_INLINE = True
    settings.BLOB_ROOT = tmp_path / "blobs"


def create(client, personas, name="contoso-vault", **extra):
    data = {
        "subscription_id": str(personas.sub_a.pk),
        "resource_group_id": str(personas.rg_a.pk),
        "name": name,
        "region": "westeurope",
        **extra,
    }
    return client.post("/api/v1/vaults/", data, content_type="application/json")


LETTERS = string.ascii_letters
NAME_CHARS = LETTERS + string.digits + "-"


@given(
    st.text(alphabet=LETTERS, min_size=1, max_size=1),
    st.text(alphabet=NAME_CHARS, min_size=1, max_size=49),
)
def test_names_that_follow_the_rules_are_accepted(first, rest):
    assert services.vault_name_errors(first + rest) == []


@given(st.text(min_size=0, max_size=80))
def test_name_rules_match_the_reference(name):
    errors = services.vault_name_errors(name)
    valid = 2 <= len(name) <= 50 and name[0] in LETTERS and all(ch in NAME_CHARS for ch in name)
    assert (errors == []) == valid


@pytest.mark.parametrize(
    "name, message",
    [
        ("a", "2 to 50 characters"),
        ("a" * 51, "2 to 50 characters"),
        ("1vault", "start with a letter"),
        ("-vault", "start with a letter"),
        ("vault_1", "only letters, numbers and hyphens"),
        ("vault.1", "only letters, numbers and hyphens"),
        ("vaulté", "only letters, numbers and hyphens"),
        ("Ävault", "start with a letter"),
    ],
)
def test_name_edge_cases(name, message):
    assert any(message in error for error in services.vault_name_errors(name))


def test_create_deploy_and_notify(personas, client_for):
    owner = client_for(personas.owner)
    response = create(owner, personas)
    assert response.status_code == 202, response.content
    vault = Vault.objects.get(name="contoso-vault")
    assert vault.state == "succeeded"  # the task ran inline after commit
    notification = Notification.objects.get(user=personas.owner, key=f"deploy:{vault.pk}")
    assert notification.title == "Deployment succeeded" and notification.link.endswith(
        f"/vaults/{vault.pk}/"
    )
    actions = list(
        AuditEvent.objects.filter(resource_path=vault.path).values_list("action", flat=True)
    )
    assert "vault.create" in actions and "vault.deploy" in actions
    # same name, other case: refused with the portal's message
    again = create(owner, personas, name="CONTOSO-VAULT")
    assert again.status_code == 400
    assert "already exists in this subscription" in json.dumps(again.json())
    check = owner.get(
        f"/api/v1/vaults/check-name/?name=Contoso-Vault&subscription={personas.sub_a.pk}"
    ).json()
    assert check["valid"] is False and "already exists" in check["errors"][0]


def test_failed_deployment_says_why_and_can_be_retried(personas, client_for, monkeypatch):
    from vaults import storage

    class BrokenStore:
        def create_container(self, name):
            raise storage.StorageError("the storage account refused the request (503)")

    monkeypatch.setattr(storage, "get_blob_store", lambda: BrokenStore())
    owner = client_for(personas.owner)
    create(owner, personas, name="flaky")
    vault = Vault.objects.get(name="flaky")
    assert vault.state == "failed" and "503" in vault.state_reason
    page = owner.get(reverse("vault-deployment", args=[vault.pk])).content.decode()
    assert "Your deployment failed" in page and "503" in page and 'value="retry"' in page
    assert Notification.objects.get(key=f"deploy:{vault.pk}").level == "error"
    monkeypatch.undo()
    response = owner.post(f"/api/v1/vaults/{vault.pk}/retry-deployment/")
    assert response.status_code == 202
    vault.refresh_from_db()
    assert vault.state == "succeeded"


def test_create_with_a_new_resource_group_and_quota(personas, client_for):
    owner = client_for(personas.owner)
    response = create(
        owner, personas, name="v1", resource_group_id=None, new_resource_group="rg-new"
    )
    assert response.status_code == 202
    assert Vault.objects.get(name="v1").resource_group.name == "rg-new"
    personas.tenant_a.max_vaults = 1
    personas.tenant_a.save()
    refused = create(owner, personas, name="v2")
    assert refused.status_code == 400
    assert "quota of 1 vaults is used up" in json.dumps(refused.json())
    assert not Vault.objects.filter(name="v2").exists()


def test_reader_and_operator_cannot_create_or_change(personas, client_for):
    assert create(client_for(personas.reader), personas).status_code == 403
    assert create(client_for(personas.operator), personas).status_code == 403
    create(client_for(personas.owner), personas)
    vault = Vault.objects.get()
    reader = client_for(personas.reader)
    assert (
        reader.patch(
            f"/api/v1/vaults/{vault.pk}/", {"redundancy": "local"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert reader.post(f"/api/v1/vaults/{vault.pk}/credentials/").status_code == 403
    assert reader.delete(f"/api/v1/vaults/{vault.pk}/").status_code == 403
    page = reader.get(reverse("vault-properties", args=[vault.pk])).content.decode()
    assert 'name="section" value="security"' not in page and "disabled" in page
    # a backup operator may download credentials, not change properties
    operator = client_for(personas.operator)
    assert operator.post(f"/api/v1/vaults/{vault.pk}/credentials/").status_code == 200
    assert (
        operator.patch(
            f"/api/v1/vaults/{vault.pk}/", {"redundancy": "local"}, content_type="application/json"
        ).status_code
        == 403
    )


def test_redundancy_is_locked_once_data_exists(personas, client_for):
    owner = client_for(personas.owner)
    create(owner, personas)
    vault = Vault.objects.get()
    ok = owner.patch(
        f"/api/v1/vaults/{vault.pk}/", {"redundancy": "local"}, content_type="application/json"
    )
    assert ok.status_code == 200 and ok.json()["redundancy"] == "local"
    Vault.objects.filter(pk=vault.pk).update(storage_bytes=1024)
    refused = owner.patch(
        f"/api/v1/vaults/{vault.pk}/", {"redundancy": "zone"}, content_type="application/json"
    )
    assert (
        refused.status_code == 400
        and "cannot change once the vault holds backup data" in json.dumps(refused.json())
    )
    vault.refresh_from_db()
    assert vault.redundancy == "local"
    page = owner.get(reverse("vault-properties", args=[vault.pk])).content.decode()
    assert "already holds backup data" in page


def test_security_pin_expires_and_works_once(personas, client_for):
    owner = client_for(personas.owner)
    create(owner, personas)
    vault = Vault.objects.get()
    pin = owner.post(f"/api/v1/vaults/{vault.pk}/security-pin/").json()["pin"]
    assert len(pin) == 8 and pin.isdigit()
    assert pin not in SecurityPin.objects.get().pin_hash
    turn_off = {
        "soft_delete_enabled": False,
        "pin": "00000000" if pin != "00000000" else "11111111",
    }
    wrong = owner.patch(f"/api/v1/vaults/{vault.pk}/", turn_off, content_type="application/json")
    assert wrong.status_code == 400 and "security PIN" in json.dumps(wrong.json())
    vault.refresh_from_db()
    assert vault.soft_delete_enabled
    ok = owner.patch(
        f"/api/v1/vaults/{vault.pk}/",
        {"soft_delete_enabled": False, "pin": pin},
        content_type="application/json",
    )
    assert ok.status_code == 200 and ok.json()["soft_delete_enabled"] is False
    owner.patch(
        f"/api/v1/vaults/{vault.pk}/",
        {"soft_delete_enabled": True},
        content_type="application/json",
    )
    reuse = owner.patch(
        f"/api/v1/vaults/{vault.pk}/",
        {"soft_delete_enabled": False, "pin": pin},
        content_type="application/json",
    )
    assert reuse.status_code == 400
    stale = owner.post(f"/api/v1/vaults/{vault.pk}/security-pin/").json()["pin"]
    SecurityPin.objects.filter(used_at__isnull=True).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    expired = owner.patch(
        f"/api/v1/vaults/{vault.pk}/",
        {"soft_delete_enabled": False, "pin": stale},
        content_type="application/json",
    )
    assert expired.status_code == 400


def test_soft_delete_and_immutability_rules(personas, client_for):
    owner = client_for(personas.owner)
    create(owner, personas)
    vault = Vault.objects.get()
    url = f"/api/v1/vaults/{vault.pk}/"
    assert (
        owner.patch(url, {"soft_delete_days": 13}, content_type="application/json").status_code
        == 400
    )
    assert (
        owner.patch(url, {"soft_delete_days": 181}, content_type="application/json").status_code
        == 400
    )
    assert (
        owner.patch(url, {"soft_delete_days": 180}, content_type="application/json").json()[
            "soft_delete_days"
        ]
        == 180
    )
    assert (
        owner.patch(url, {"immutability": "locked"}, content_type="application/json").status_code
        == 200
    )
    undo = owner.patch(url, {"immutability": "enabled"}, content_type="application/json")
    assert undo.status_code == 400 and "cannot be undone" in json.dumps(undo.json())


def test_credentials_file_contents_hash_only_and_audit(personas, client_for):
    owner = client_for(personas.owner)
    create(owner, personas)
    vault = Vault.objects.get()
    first = owner.post(reverse("vault-credentials", args=[vault.pk]))
    assert first.status_code == 200
    assert first["Content-Disposition"].startswith('attachment; filename="contoso-vault_')
    document = json.loads(first.content)
    assert document["vault_id"] == str(vault.pk) and document["region"] == "westeurope"
    assert (
        document["subscription_id"] == str(personas.sub_a.pk)
        and document["resource_group"] == "rg-a"
    )
    secret = document["registration_secret"]
    assert secret.startswith("bpr_")
    expires = timezone.datetime.fromisoformat(document["expires_at"])
    assert timedelta(days=9, hours=23) < expires - timezone.now() <= timedelta(days=10)
    second = owner.post(reverse("vault-credentials", args=[vault.pk]))
    assert json.loads(second.content)["registration_secret"] != secret
    stored = VaultCredential.objects.filter(vault=vault)
    assert stored.count() == 2 and all(secret.split("_", 2)[2] not in c.secret_hash for c in stored)
    assert stored.filter(used_at__isnull=True).count() == 2  # a new download voids nothing
    assert AuditEvent.objects.filter(action="vault.credentials.download").count() == 2


def test_delete_vault_refused_with_data_then_storage_removed(personas, client_for, settings):
    owner = client_for(personas.owner)
    create(owner, personas)
    vault = Vault.objects.get()
    Vault.objects.filter(pk=vault.pk).update(storage_bytes=10)
    refused = owner.delete(f"/api/v1/vaults/{vault.pk}/")
    assert refused.status_code == 400 and "still holds backup data" in json.dumps(refused.json())
    Vault.objects.filter(pk=vault.pk).update(storage_bytes=0)
    container = settings.BLOB_ROOT / vault.container_name
    assert container.exists()
    assert owner.delete(f"/api/v1/vaults/{vault.pk}/").status_code == 204
    assert not Vault.objects.filter(pk=vault.pk).exists() and not container.exists()


def test_wizard_validates_inline_and_on_submit(personas, client_for):
    owner = client_for(personas.owner)
    inline = owner.get(
        reverse("vault-validate-name"), {"name": "1bad", "subscription": personas.sub_a.pk}
    )
    assert "must start with a letter" in inline.content.decode()
    base = {
        "subscription": personas.sub_a.pk,
        "resource_group": personas.rg_a.pk,
        "region": "westeurope",
    }
    review = owner.post(reverse("vault-create"), {**base, "name": "bad_name", "step": "review"})
    assert review.status_code == 400 and "Validation failed" in review.content.decode()
    review = owner.post(reverse("vault-create"), {**base, "name": "good-name", "step": "review"})
    assert "Validation passed" in review.content.decode()
    created = owner.post(reverse("vault-create"), {**base, "name": "good-name", "step": "create"})
    vault = Vault.objects.get(name="good-name")
    assert created.status_code == 302 and created.url == reverse(
        "vault-deployment", args=[vault.pk]
    )
    assert "Your deployment is complete" in owner.get(created.url).content.decode()


def test_vault_api_actions_are_404_for_another_tenant(personas, client_for):
    create(client_for(personas.owner), personas)
    vault = Vault.objects.get()
    outsider = client_for(personas.owner_b)
    api = f"/api/v1/vaults/{vault.pk}/"
    for method, path in [
        ("post", api + "credentials/"),
        ("post", api + "security-pin/"),
        ("post", api + "retry-deployment/"),
    ]:
        assert (
            getattr(outsider, method)(path, content_type="application/json").status_code == 404
        ), (method, path)
    assert outsider.get("/api/v1/vaults/").json()["results"] == []
    assert create(outsider, personas, name="intruder").status_code == 404
    assert not SecurityPin.objects.exists() and not VaultCredential.objects.exists()


def test_getting_started_serves_the_agent_wheel(personas, client_for):
    import io
    import zipfile

    owner = client_for(personas.owner)
    create(owner, personas)
    vault = Vault.objects.get()
    page = owner.get(
        reverse("vault-getting-started", args=[vault.pk]),
        {"goal": ["files", "system_state"], "prepare": 1},
    )
    html = page.content.decode()
    assert "Already downloaded or using the latest Recovery Services Agent" in html
    assert "Where is your workload running?" in html and "System State" in html
    wheel = owner.get(reverse("agent-wheel"), follow=True)
    assert wheel.redirect_chain[0][0].endswith("/downloads/backup_agent-0.1.0-py3-none-any.whl")
    names = zipfile.ZipFile(io.BytesIO(wheel.content)).namelist()
    assert "backup_agent/crypto.py" in names and any(n.endswith("entry_points.txt") for n in names)
    assert not any(n.startswith(("portal/", "vaults/")) for n in names)
