"""Vault webhooks: signed JSON deliveries, retried with backoff, managed per vault."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from django.utils import timezone

from portal.models import AuditEvent
from tests.vaults.test_alerts import make_machine, make_vault
from vaults import alerts, webhooks
from vaults.models import AlertDelivery, VaultWebhook

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def inline_tasks(settings):
    settings.TASKS_RUN_INLINE = True
    settings.PORTAL_URL = "https://backup.example"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def vault(personas):
    return make_vault(personas.tenant_a, personas.sub_a, personas.rg_a)


class Receiver:
    """An httpx.MockTransport that answers with the given status codes in turn."""

    def __init__(self, *statuses):
        self.statuses = list(statuses)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == "timeout":
            raise httpx.ConnectTimeout("timed out", request=request)
        return httpx.Response(status)


@pytest.fixture
def receiver(monkeypatch):
    def install(*statuses):
        receiver = Receiver(*statuses)
        monkeypatch.setattr(webhooks, "transport", httpx.MockTransport(receiver))
        return receiver

    return install


def add_webhook(client, vault, url="https://hooks.example/backup"):
    response = client.post(
        f"/api/v1/vaults/{vault.pk}/webhooks/", {"url": url}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def raise_failure(vault, machine):
    return alerts.raise_alert(
        "backup_failed",
        tenant=vault.tenant,
        vault=vault,
        machine=machine,
        subject_id=machine.pk,
        subject_name=machine.name,
        details={"error": "Disk full"},
    )


def test_alert_events_are_posted_as_signed_json(personas, client_for, receiver, vault):
    hook = receiver(200)
    created = add_webhook(client_for(personas.contributor), vault)
    assert len(created["secret"]) == 64
    alert = raise_failure(vault, make_machine(vault))
    (request,) = hook.requests
    assert request.method == "POST" and str(request.url) == "https://hooks.example/backup"
    expected = hmac.new(created["secret"].encode(), request.content, hashlib.sha256).hexdigest()
    assert request.headers["X-BackupPortal-Signature"] == f"sha256={expected}"
    assert request.headers["X-BackupPortal-Event"] == "alert.raised"
    body = json.loads(request.content)
    assert body["event"] == "alert.raised"
    assert body["alert"]["id"] == str(alert.pk) and body["alert"]["severity"] == "critical"
    assert body["alert"]["vault"] == {"id": str(vault.pk), "name": vault.name}
    assert body["alert"]["url"].startswith(f"https://backup.example/vaults/{vault.pk}/alerts/")
    delivery = AlertDelivery.objects.get(channel="webhook")
    assert delivery.sent_at is not None and delivery.attempts == 1
    # resolving sends a second event, once
    alerts.resolve_alert(alert)
    assert json.loads(hook.requests[-1].content)["event"] == "alert.resolved"
    assert len(hook.requests) == 2
    assert webhooks.deliver(delivery.pk) == "skipped"
    assert VaultWebhook.objects.get().last_status == "HTTP 200"


def test_failed_deliveries_are_retried_with_backoff_up_to_five_attempts(
    personas, client_for, receiver, vault
):
    hook = receiver(500, "timeout", 200)
    add_webhook(client_for(personas.owner), vault)
    raise_failure(vault, make_machine(vault))
    delivery = AlertDelivery.objects.get(channel="webhook")
    assert delivery.attempts == 1 and delivery.sent_at is None
    first_retry = delivery.next_attempt_at
    assert first_retry - timezone.now() == pytest.approx(
        timedelta(minutes=1), abs=timedelta(seconds=5)
    )
    assert webhooks.retry_due(timezone.now()) == 0  # not yet due
    assert webhooks.retry_due(first_retry + timedelta(seconds=1)) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and "ConnectTimeout" in delivery.last_error
    assert delivery.next_attempt_at - timezone.now() > timedelta(minutes=3)  # backing off
    assert webhooks.retry_due(delivery.next_attempt_at) == 1
    delivery.refresh_from_db()
    assert delivery.sent_at is not None and delivery.attempts == 3
    # every attempt carried the same signed body
    assert len({r.content for r in hook.requests}) == 1
    assert len({r.headers["X-BackupPortal-Signature"] for r in hook.requests}) == 1


def test_a_receiver_that_keeps_failing_is_given_up_after_five_attempts(
    personas, client_for, receiver, vault
):
    hook = receiver(*[503] * 10)
    add_webhook(client_for(personas.owner), vault)
    raise_failure(vault, make_machine(vault))
    delivery = AlertDelivery.objects.get(channel="webhook")
    for _ in range(10):
        webhooks.retry_due(timezone.now() + timedelta(days=1))
    delivery.refresh_from_db()
    assert delivery.attempts == 5 and delivery.failed_at is not None and delivery.sent_at is None
    assert len(hook.requests) == 5


def test_a_real_http_receiver_checks_the_signature(personas, client_for, vault, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True  # the receiver listens on 127.0.0.1
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        secret = add_webhook(client_for(personas.owner), vault, url)["secret"]
        raise_failure(vault, make_machine(vault))
    finally:
        server.shutdown()
        server.server_close()
    ((headers, body),) = received
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-BackupPortal-Signature"], signature)
    assert AlertDelivery.objects.get(channel="webhook").sent_at is not None


def test_disabled_webhooks_and_other_vaults_get_nothing(personas, client_for, receiver, vault):
    hook = receiver()
    owner = client_for(personas.owner)
    other = make_vault(personas.tenant_a, personas.sub_a, personas.rg_a, name="vault-other")
    created = add_webhook(owner, vault)
    add_webhook(owner, other, "https://other.example/hook")
    response = owner.patch(
        f"/api/v1/vaults/{vault.pk}/webhooks/{created['id']}/",
        {"enabled": False},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["enabled"] is False
    assert "secret" not in response.json()
    raise_failure(vault, make_machine(vault))
    assert hook.requests == [] and not AlertDelivery.objects.filter(channel="webhook").exists()


def test_webhooks_are_managed_from_the_alerts_page(personas, client_for, vault):
    owner = client_for(personas.owner)
    url = f"/vaults/{vault.pk}/alerts/"
    bad = owner.post(url, {"action": "webhook-add", "url": "ftp://x"})
    assert bad.status_code == 302 and not VaultWebhook.objects.exists()
    response = owner.post(url, {"action": "webhook-add", "url": "https://hooks.example/a"})
    assert response.status_code == 201
    webhook = VaultWebhook.objects.get()
    assert webhook.secret in response.content.decode()  # shown once, on creation
    page = owner.get(url, {"tab": "webhooks"}).content.decode()
    assert "https://hooks.example/a" in page and webhook.secret not in page
    reader = client_for(personas.reader)
    assert "https://hooks.example/a" in reader.get(url, {"tab": "webhooks"}).content.decode()
    assert reader.post(url, {"action": "webhook-delete", "webhook": webhook.pk}).status_code == 403
    owner.post(url, {"action": "webhook-disable", "webhook": webhook.pk})
    webhook.refresh_from_db()
    assert webhook.enabled is False
    owner.post(url, {"action": "webhook-delete", "webhook": webhook.pk})
    assert not VaultWebhook.objects.exists()
    actions = set(
        AuditEvent.objects.filter(action__startswith="vault.webhook").values_list(
            "action", flat=True
        )
    )
    assert actions == {"vault.webhook.create", "vault.webhook.update", "vault.webhook.delete"}


def test_webhook_api_roles_and_isolation(personas, client_for, vault):
    base = f"/api/v1/vaults/{vault.pk}/webhooks/"
    created = add_webhook(client_for(personas.owner), vault)
    detail = f"{base}{created['id']}/"
    reader = client_for(personas.reader)
    assert [w["url"] for w in reader.get(base).json()] == ["https://hooks.example/backup"]
    assert "secret" not in reader.get(detail).json()
    denied = reader.post(base, {"url": "https://x.example/"}, content_type="application/json")
    assert denied.status_code == 403
    assert client_for(personas.operator).delete(detail).status_code == 403
    outsider = client_for(personas.owner_b)
    assert outsider.get(base).status_code == 404
    assert outsider.get(detail).status_code == 404
    assert (
        outsider.post(
            base, {"url": "https://evil.example/"}, content_type="application/json"
        ).status_code
        == 404
    )
    assert (
        outsider.patch(detail, {"enabled": False}, content_type="application/json").status_code
        == 404
    )
    assert outsider.delete(detail).status_code == 404
    assert VaultWebhook.objects.get().enabled is True
    bad = client_for(personas.owner).post(
        base, {"url": "javascript:alert(1)"}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert client_for(personas.owner).delete(detail).status_code == 204


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/admin/",
        "http://localhost/x",
        "http://10.0.0.8/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_webhooks_cannot_target_the_portals_own_network(personas, client_for, vault, url):
    from vaults.models import VaultWebhook

    response = client_for(personas.owner).post(
        f"/api/v1/vaults/{vault.pk}/webhooks/", {"url": url}, content_type="application/json"
    )
    assert response.status_code == 400 and "public addresses only" in response.content.decode()
    assert not VaultWebhook.objects.exists()
