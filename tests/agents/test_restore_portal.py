import json

import pytest
from django.urls import reverse

from agents.models import AgentCommand, Machine
from portal.models import AuditEvent
from tests.agents.test_agent_api import local_blobs, registered, vault  # noqa: F401 - fixtures
from vaults.models import RecoveryPoint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def point(vault):  # noqa: F811
    machine, agent = registered(vault, "web-01")
    point = RecoveryPoint.objects.create(
        tenant=machine.tenant,
        vault=vault,
        machine=machine,
        kind="adhoc",
        taken_at=machine.registered_at,
        manifest="m1",
        files=3,
    )
    return machine, agent, point


def test_browse_through_the_agent_keeps_no_names(personas, client_for, point):
    machine, agent, rp = point
    operator = client_for(personas.operator)
    url = reverse("machine-recover", args=[machine.pk])
    response = operator.post(url, {"action": "browse", "point": rp.pk, "path": "etc"})
    command = AgentCommand.objects.get(kind="browse")
    assert response.status_code == 302 and str(command.pk) in response.url
    fragment = reverse("command-browse", args=[command.pk])
    assert "Waiting for the agent" in operator.get(fragment).content.decode()
    delivered = agent.get("config/").json()["commands"]
    assert delivered[0]["kind"] == "browse" and delivered[0]["payload"] == {
        "point_id": str(rp.pk),
        "path": "etc",
    }
    agent.post(f"commands/{command.pk}/ack/")
    entries = [
        {"name": "secret-plans.txt", "type": "file", "size": 12},
        {"name": "ssh", "type": "dir"},
    ]
    agent.post(f"commands/{command.pk}/result/", {"ok": True, "result": {"entries": entries}})
    html = operator.get(fragment).content.decode()
    assert "secret-plans.txt" in html and 'value="etc/ssh"' in html
    command.refresh_from_db()
    assert command.result == {"count": 2} and "secret-plans" not in json.dumps(command.payload)
    assert client_for(personas.owner_b).get(fragment).status_code == 404


def test_restore_to_this_or_an_unlocked_server(personas, client_for, point, vault):  # noqa: F811
    machine, _agent, rp = point
    other, other_agent = registered(vault, "web-02")
    operator = client_for(personas.operator)
    url = reverse("machine-recover", args=[machine.pk])
    base = {
        "action": "restore",
        "point": rp.pk,
        "target_dir": "/srv/restore",
        "on_conflict": "overwrite",
        "paths": ["etc/hosts", "home"],
    }
    refused = operator.post(url, {**base, "target_machine": other.pk}, follow=True)
    assert "backup-agent unlock --machine web-01" in refused.content.decode()
    assert not AgentCommand.objects.filter(kind="restore").exists()
    other_agent.client.patch(
        "/api/agent/v1/config/", {"unlocked_machines": ["web-01"]}, content_type="application/json"
    )
    assert Machine.objects.get(pk=other.pk).unlocked_sources == ["web-01"]
    done = operator.post(url, {**base, "target_machine": other.pk})
    assert done.status_code == 302 and "operation=restore" in done.url
    command = AgentCommand.objects.get(kind="restore")
    assert command.machine == other
    assert command.payload == {
        "point_id": str(rp.pk),
        "source_machine": "web-01",
        "paths": ["etc/hosts", "home"],
        "target": "/srv/restore",
        "on_conflict": "overwrite",
    }
    assert AuditEvent.objects.filter(action="restore.request").count() == 1
    bad = operator.post(
        url, {**base, "target_machine": machine.pk, "target_dir": "relative/dir"}, follow=True
    )
    assert "absolute folder" in bad.content.decode()


def test_reader_cannot_browse_or_restore(personas, client_for, point):
    machine, _agent, rp = point
    reader = client_for(personas.reader)
    url = reverse("machine-recover", args=[machine.pk])
    page = reader.get(url, {"point": rp.pk}).content.decode()
    assert 'value="browse"' not in page and "Your role cannot restore." in page
    response = reader.post(
        url,
        {
            "action": "restore",
            "point": rp.pk,
            "target_machine": machine.pk,
            "target_dir": "/srv",
            "on_conflict": "copy",
        },
        follow=True,
    )
    assert response.status_code in (403, 404) or "does not allow" in response.content.decode()
    assert not AgentCommand.objects.exists()
