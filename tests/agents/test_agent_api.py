"""The agent API in-process: registration, the cheap poll, the upload and commit protocol."""

import hashlib
import json
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import AgentCommand, Job, Machine
from vaults.models import Pack, RecoveryPoint, VaultCredential

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def local_blobs(settings, tmp_path):
    settings.TASKS_RUN_INLINE = True
    settings.BLOB_ROOT = tmp_path / "blobs"
    settings.AZURE_STORAGE_CONNECTION_STRING = None
    settings.PORTAL_URL = "http://testserver"


@pytest.fixture
def vault(personas, client_for):
    owner = client_for(personas.owner)
    response = owner.post(
        "/api/v1/vaults/",
        {
            "subscription_id": str(personas.sub_a.pk),
            "resource_group_id": str(personas.rg_a.pk),
            "name": "v1",
            "region": "westeurope",
        },
        content_type="application/json",
    )
    from vaults.models import Vault

    vault = Vault.objects.get(pk=response.json()["id"])
    vault.owner_client = owner
    return vault


def credentials(vault) -> dict:
    return vault.owner_client.post(f"/api/v1/vaults/{vault.pk}/credentials/").json()


def register(secret, host="web-01", **extra):
    body = {
        "registration_secret": secret,
        "host_name": host,
        "os_name": "Debian 12",
        "agent_version": "0.1.0",
        "time_zone": "Europe/Berlin",
        **extra,
    }
    return Client().post("/api/agent/v1/register/", body, content_type="application/json")


class Agent:
    def __init__(self, token):
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def get(self, path, **extra):
        return self.client.get("/api/agent/v1/" + path, **extra)

    def post(self, path, body=None):
        return self.client.post(
            "/api/agent/v1/" + path, body or {}, content_type="application/json"
        )


def registered(vault, host="web-01"):
    response = register(credentials(vault)["registration_secret"], host)
    assert response.status_code == 201, response.content
    return Machine.objects.get(pk=response.json()["machine_id"]), Agent(response.json()["token"])


def put_blob(url, data: bytes, **headers):
    parts = urlsplit(url)
    return Client().generic(
        "PUT",
        f"{parts.path}?{parts.query}",
        data,
        content_type="application/octet-stream",
        HTTP_X_MS_BLOB_TYPE="BlockBlob",
        **headers,
    )


def test_registration_rules(vault):
    doc = credentials(vault)
    first = register(doc["registration_secret"])
    assert first.status_code == 201
    body = first.json()
    assert (
        body["token"].startswith("bpm_") and body["vault_name"] == "v1" and body["key_blob"] is None
    )
    machine = Machine.objects.get()
    assert body["token"].split("_", 2)[2] not in machine.token_hash
    assert machine.time_zone == "Europe/Berlin"
    reused = register(doc["registration_secret"], host="web-02")
    assert reused.status_code == 400 and "already used" in json.dumps(reused.json())
    forged = register(doc["registration_secret"][:-3] + "xyz", host="web-03")
    assert forged.status_code == 400 and "not valid for this portal" in json.dumps(forged.json())
    expired_doc = credentials(vault)
    VaultCredential.objects.filter(used_at__isnull=True).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    expired = register(expired_doc["registration_secret"], host="web-04")
    assert expired.status_code == 400 and "expired" in json.dumps(expired.json())
    duplicate = register(credentials(vault)["registration_secret"], host="WEB-01")
    assert duplicate.status_code == 400 and "--reregister" in json.dumps(duplicate.json())
    # the refused attempt did not use up the file: re-registering with it works
    assert Machine.objects.count() == 1


def test_reregister_rotates_the_token_and_returns_the_keys(vault):
    machine, agent = registered(vault)
    assert (
        agent.client.put(
            "/api/agent/v1/keys/", {"key_blob": "d3JhcHBlZA=="}, content_type="application/json"
        ).status_code
        == 204
    )
    again = register(credentials(vault)["registration_secret"], reregister=True)
    assert again.status_code == 201 and again.json()["machine_id"] == str(machine.pk)
    assert again.json()["key_blob"] == "d3JhcHBlZA=="
    assert agent.get("config/").status_code == 401  # the old token no longer works


def test_poll_is_cheap_and_answers_304_until_something_changes(vault):
    machine, agent = registered(vault)
    first = agent.get("config/")
    assert first.status_code == 200 and first.json()["policy"] is None
    etag = first["ETag"]
    agent.get("config/", HTTP_IF_NONE_MATCH=etag)  # warm the release cache
    with CaptureQueriesContext(connection) as queries:
        unchanged = agent.get("config/", HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert len(queries) <= 3, [q["sql"] for q in queries]
    assert not any(q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT")) for q in queries)
    AgentCommand.objects.create(
        machine=machine, kind="backup", expires_at=timezone.now() + timedelta(hours=1)
    )
    with_command = agent.get("config/", HTTP_IF_NONE_MATCH=etag)
    assert (
        with_command.status_code == 200 and with_command.json()["commands"][0]["kind"] == "backup"
    )
    AgentCommand.objects.all().delete()
    Machine.objects.filter(pk=machine.pk).update(throttle_enabled=True, settings_version=2)
    assert agent.get("config/", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_backup_protocol_upload_register_commit(vault, settings):
    machine, agent = registered(vault)
    job_id = agent.post("jobs/", {"kind": "backup", "trigger": "adhoc"}).json()["id"]
    chunk_id = hashlib.sha256(b"chunk").hexdigest()
    assert agent.post("chunks/lookup/", {"ids": [chunk_id]}).json()["present"] == {}
    pack_name = secrets.token_hex(16)
    body = secrets.token_bytes(5000)
    # registering before uploading is refused
    early = agent.post(
        "packs/",
        {
            "name": pack_name,
            "size": len(body),
            "chunks": [{"id": chunk_id, "offset": 0, "length": 5000}],
        },
    )
    assert early.status_code == 400 and "not in storage" in json.dumps(early.json())
    urls = agent.post(
        "uploads/",
        {
            "blobs": [
                {"kind": "pack", "name": pack_name, "size": len(body)},
                {"kind": "manifest", "name": "m1", "size": 10},
            ]
        },
    ).json()["urls"]
    assert put_blob(urls[f"packs/{pack_name}"], body, HTTP_IF_NONE_MATCH="*").status_code == 201
    assert put_blob(urls[f"packs/{pack_name}"], body, HTTP_IF_NONE_MATCH="*").status_code == 409
    registered_pack = agent.post(
        "packs/",
        {
            "name": pack_name,
            "size": len(body),
            "chunks": [{"id": chunk_id, "offset": 0, "length": 5000}],
        },
    )
    assert registered_pack.status_code == 201
    assert agent.post("chunks/lookup/", {"ids": [chunk_id]}).json()["present"] == {
        chunk_id: pack_name
    }
    # a point naming a missing manifest is refused and stays invisible
    refused = agent.post(
        "recovery-points/", {"job_id": job_id, "manifest": "m1", "packs": [pack_name]}
    )
    assert refused.status_code == 400 and not RecoveryPoint.objects.exists()
    put_blob(urls[f"manifests/{machine.pk}/m1"], b"0123456789")
    unknown_pack = agent.post(
        "recovery-points/", {"job_id": job_id, "manifest": "m1", "packs": [secrets.token_hex(16)]}
    )
    assert unknown_pack.status_code == 400 and not RecoveryPoint.objects.exists()
    point = agent.post(
        "recovery-points/",
        {
            "job_id": job_id,
            "manifest": "m1",
            "packs": [pack_name],
            "files": 3,
            "bytes_scanned": 5000,
        },
    )
    assert point.status_code == 201, point.content
    assert point.json()["point_type"] == "adhoc" and point.json()["packs"] == [pack_name]
    finished = agent.post(
        f"jobs/{job_id}/finish/", {"state": "completed", "point_id": point.json()["id"]}
    )
    assert finished.json()["state"] == "completed"
    vault.refresh_from_db()
    assert vault.storage_bytes == 5010
    assert Job.objects.get().recovery_point_id is not None
    listed = agent.get("recovery-points/").json()["points"]
    assert [p["id"] for p in listed] == [point.json()["id"]]
    read = agent.post("downloads/", {"blobs": [{"kind": "pack", "name": pack_name}]}).json()["urls"]
    parts = urlsplit(read[f"pack:{pack_name}"])
    got = Client().get(f"{parts.path}?{parts.query}", HTTP_RANGE="bytes=10-19")
    assert (
        got.status_code == 206
        and b"".join(got.streaming_content if got.streaming else [got.content]) == body[10:20]
    )


def test_machines_of_another_vault_or_tenant_are_out_of_reach(vault, personas, client_for):
    from vaults.models import Vault

    machine, agent = registered(vault)
    other_vault = Vault.objects.create(
        tenant=personas.tenant_b,
        subscription=personas.sub_b,
        resource_group=personas.rg_b,
        name="other",
        region_id="westeurope",
        state="succeeded",
    )
    stranger = Machine.objects.create(
        tenant=personas.tenant_b,
        vault=other_vault,
        name="stranger",
        token_key_id="k1",
        token_hash="x",
    )
    pack = Pack.objects.create(
        vault=other_vault, machine=stranger, name=secrets.token_hex(16), size=1
    )
    assert agent.get("recovery-points/?machine=stranger").status_code == 404
    assert agent.get("keys/?machine=stranger").status_code == 404
    assert (
        agent.post("downloads/", {"blobs": [{"kind": "pack", "name": pack.name}]}).status_code
        == 400
    )
    assert agent.post("chunks/locate/?machine=stranger", {"ids": []}).status_code == 404
    assert Client().get("/api/agent/v1/config/").status_code in (401, 403)
    assert (
        Client(HTTP_AUTHORIZATION="Bearer bpm_nope_nope").get("/api/agent/v1/config/").status_code
        == 401
    )


def test_bad_requests_get_clear_messages(vault):
    _machine, agent = registered(vault)
    assert "64 hex" in json.dumps(agent.post("chunks/lookup/", {"ids": ["zz"]}).json())
    assert agent.post("jobs/", {"kind": "dance", "trigger": "adhoc"}).status_code == 400
    past = (timezone.now() - timedelta(days=1)).isoformat()
    assert "future" in json.dumps(
        agent.post("jobs/", {"kind": "backup", "trigger": "adhoc", "retain_until": past}).json()
    )
    too_big = agent.post(
        "uploads/", {"blobs": [{"kind": "pack", "name": secrets.token_hex(16), "size": 10**12}]}
    )
    assert too_big.status_code == 400
    bad_json = agent.client.post("/api/agent/v1/jobs/", "{", content_type="application/json")
    assert bad_json.status_code == 400


def test_watchdog_fails_a_silent_job_once(vault):
    from agents.services.jobs import fail_silent_jobs

    _machine, agent = registered(vault)
    job_id = agent.post("jobs/", {"kind": "backup", "trigger": "scheduled"}).json()["id"]
    assert fail_silent_jobs() == 0
    later = timezone.now() + timedelta(minutes=11)
    assert fail_silent_jobs(later) == 1
    assert fail_silent_jobs(later) == 0
    job = Job.objects.get(pk=job_id)
    assert job.state == "failed" and "stopped reporting" in job.error
    assert agent.post(f"jobs/{job_id}/progress/", {"bytes_scanned": 5}).status_code == 400
