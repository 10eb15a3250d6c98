"""Fan-out of live job events to many open pages of one tenant, on one daphne process.

    python benchmarks/websocket_fanout.py [--sockets 1000] [--events 30]

Starts a fresh portal (embedded default: SQLite, in-memory channel layer) with its worker,
signs in as the demo owner, opens N websockets subscribed to one vault, then has a scripted
agent report job progress through the agent API and measures, for every event, the time
until each socket received it. Prints delivery latency p50/p99 and daphne's memory per
socket. Everything runs on 127.0.0.1 and stops by itself.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.agent_api import ScriptedAgent, create_vault, wait_deployed  # noqa: E402
from tests.e2e.conftest import PortalServer  # noqa: E402


def rss_bytes(pid: int) -> int:
    """Resident memory of daphne (the serve command's child running portal.asgi)."""
    total = 0
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            cmdline = (child / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (child / "status").read_text()
        except OSError:
            continue
        if "daphne" in cmdline and f"PPid:\t{pid}\n" in status:
            total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
    return total


def sign_in(url: str) -> str:
    with httpx.Client(base_url=url, follow_redirects=False) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/login/",
            data={
                "username": "owner@contoso.example",
                "password": "demo-password-123",
                "csrfmiddlewaretoken": token,
            },
        )
        assert response.status_code == 302, "sign-in failed"
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


async def open_sockets(url, cookie, vault_id, count):
    sockets = []
    ws_url = url.replace("http://", "ws://") + "/ws/events/"
    for _ in range(count):
        ws = await websockets.connect(
            ws_url, additional_headers={"Cookie": cookie, "Origin": url}, max_queue=None
        )
        await ws.send(json.dumps({"subscribe": "vault", "id": vault_id}))
        sockets.append(ws)
    for ws in sockets:
        reply = json.loads(await ws.recv())
        assert reply.get("ok"), reply
    return sockets


async def _wait_for_event(ws, number, sent_at, received):
    while True:
        message = json.loads(await ws.recv())
        if message.get("kind") == "job" and message["payload"]["bytes_scanned"] == number:
            received.append(time.perf_counter() - sent_at)
            return


async def measure(sockets, agent, job_id, events):
    latencies = []
    for number in range(1, events + 1):
        sent_at = time.perf_counter()
        waiters = [
            asyncio.create_task(_wait_for_event(ws, number, sent_at, latencies)) for ws in sockets
        ]
        await asyncio.to_thread(agent.progress, job_id, bytes_scanned=number, bytes_total=events)
        await asyncio.wait_for(asyncio.gather(*waiters), timeout=30)
    return latencies


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--events", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "AZURE_STORAGE_CONNECTION_STRING")
        }
        env.update(
            PORTAL_DATA_DIR=data,
            DEBUG="false",
            SECURE_COOKIES="false",
            DJANGO_SETTINGS_MODULE="portal.settings",
            AGENT_RATE_LIMIT="100000/minute",
        )
        server = PortalServer(Path(data), env)
        server.manage("migrate", "--noinput")
        server.manage("seed_demo")
        server.start()
        try:
            token = server.manage("create_access_token", "owner@contoso.example").stdout.strip()
            api = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            vault = wait_deployed(api, create_vault(api, "fanout")["id"])
            agent = ScriptedAgent(
                server, api.post(f"/api/v1/vaults/{vault['id']}/credentials/").json()
            )
            job_id = agent.start_job()
            cookie = sign_in(server.url)
            serve_pid = server.processes[0].pid
            before = rss_bytes(serve_pid)

            async def run():
                started = time.perf_counter()
                sockets = await open_sockets(server.url, cookie, vault["id"], args.sockets)
                opened = time.perf_counter() - started
                after = rss_bytes(serve_pid)
                latencies = await measure(sockets, agent, job_id, args.events)
                for ws in sockets:
                    await ws.close()
                return opened, after, latencies

            opened, after, latencies = asyncio.run(run())
        finally:
            server.stop()
    ms = [x * 1000 for x in latencies]
    print(
        f"sockets: {args.sockets}, events: {args.events}, deliveries: {len(ms)} (opened in {opened:.1f} s)"
    )
    print(
        f"delivery latency: p50 {percentile(ms, 0.50):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms, mean {statistics.mean(ms):.1f} ms"
    )
    print(
        f"daphne RSS: {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB with sockets "
        f"→ {(after - before) / args.sockets / 1024:.1f} KiB per socket"
    )


if __name__ == "__main__":
    main()
