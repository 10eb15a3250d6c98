import pytest

from agents.models import AgentCommand, Job
from tests.agents.test_agent_api import local_blobs, registered, vault  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)


def test_machines_jobs_and_backup_now_through_the_tenant_api(personas, client_for, vault):  # noqa: F811
    machine, agent = registered(vault, "db-01")
    job_id = agent.post("jobs/", {"kind": "backup", "trigger": "scheduled"}).json()["id"]
    owner = client_for(personas.owner)
    machines = owner.get(f"/api/v1/machines/?vault={vault.pk}").json()["results"]
    assert [m["name"] for m in machines] == ["db-01"] and machines[0]["online"] is True
    jobs = owner.get("/api/v1/jobs/", {"vault": str(vault.pk), "state": "in_progress"}).json()[
        "results"
    ]
    assert [j["id"] for j in jobs] == [job_id] and jobs[0]["machine"] == "db-01"
    assert (
        client_for(personas.reader).post(f"/api/v1/machines/{machine.pk}/backup/").status_code
        == 403
    )
    queued = client_for(personas.operator).post(f"/api/v1/machines/{machine.pk}/backup/")
    assert queued.status_code == 202
    command = AgentCommand.objects.get(pk=queued.json()["command"])
    assert command.kind == "backup" and command.machine == machine
    assert owner.get(f"/api/v1/commands/{command.pk}/").json()["state"] == "pending"
    outsider = client_for(personas.owner_b)
    assert outsider.get("/api/v1/machines/").json()["results"] == []
    assert outsider.get("/api/v1/jobs/").json()["results"] == []
    assert outsider.post(f"/api/v1/machines/{machine.pk}/backup/").status_code == 404
    assert Job.objects.count() == 1
