"""A scripted agent speaking the agent API over HTTP, for portal-side browser tests.

The real agent is tested end to end elsewhere; these tests need exact control of when a
job starts, reports and finishes, so they speak the same protocol step by step.
"""

import json

import httpx


def tenant_api(server):
    token = server.manage("create_access_token", "owner@contoso.example").stdout.strip()
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def create_vault(api, name="live-vault") -> dict:
    subscription = api.get("/api/v1/subscriptions/").json()["results"][0]
    group = api.get("/api/v1/resource-groups/").json()["results"][0]
    response = api.post(
        "/api/v1/vaults/",
        json={
            "subscription_id": subscription["id"],
            "resource_group_id": group["id"],
            "name": name,
            "region": "westeurope",
        },
    )
    response.raise_for_status()
    return response.json()


def wait_deployed(api, vault_id, timeout=30):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vault = api.get(f"/api/v1/vaults/{vault_id}/").json()
        if vault["state"] != "deploying":
            return vault
        time.sleep(0.2)
    raise AssertionError("vault deployment did not finish")


class ScriptedAgent:
    def __init__(self, server, credentials: dict, host="web-01"):
        response = httpx.post(
            f"{server.url}/api/agent/v1/register/",
            json={
                "registration_secret": credentials["registration_secret"],
                "host_name": host,
                "os_name": "Debian GNU/Linux 12",
                "agent_version": "0.1.0",
                "time_zone": "Europe/Berlin",
            },
        )
        response.raise_for_status()
        body = response.json()
        self.machine_id = body["machine_id"]
        self.http = httpx.Client(
            base_url=f"{server.url}/api/agent/v1/",
            headers={"Authorization": f"Bearer {body['token']}"},
            timeout=30,
        )

    def start_job(self, kind="backup", trigger="adhoc") -> str:
        response = self.http.post("jobs/", json={"kind": kind, "trigger": trigger})
        response.raise_for_status()
        return response.json()["id"]

    def progress(self, job_id, **values):
        self.http.post(f"jobs/{job_id}/progress/", json=values).raise_for_status()

    def finish(self, job_id, state="completed", **extra):
        self.http.post(
            f"jobs/{job_id}/finish/",
            content=json.dumps({"state": state, **extra}),
            headers={"Content-Type": "application/json"},
        ).raise_for_status()
