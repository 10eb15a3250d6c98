"""Real processes: daphne and the django-q2 worker on a fresh data folder, and Chromium.

The portal under test runs exactly as `make run` starts it, on the embedded default or,
in the services pass, on PostgreSQL/Redis/Azurite taken from the environment.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, _free_port, require_service

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(pytestconfig):
    require_service(pytestconfig, "Chromium (/usr/bin/chromium)", Path(CHROMIUM).exists())
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args():
    return {"viewport": {"width": 1366, "height": 768}}


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


class PortalServer:
    def __init__(self, data_dir: Path, env: dict):
        self.data_dir = data_dir
        self.env = env
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env["PORTAL_URL"] = self.url
        self.processes = []

    def manage(self, *args, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def start(self, worker=True):
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - closed with the process
        args = ["serve", "--port", str(self.port)] + ([] if worker else ["--no-worker"])
        self.processes.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), *args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/login/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(
            "portal did not start:\n" + (self.data_dir / "server.log").read_text()[-3000:]
        )

    def stop(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _server_env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        PORTAL_DATA_DIR=str(data_dir),
        DEBUG="false",
        SECURE_COOKIES="false",
        DJANGO_SETTINGS_MODULE="portal.settings",
    )
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith("postgres"):
        name = f"bp_e2e_{uuid.uuid4().hex[:8]}"
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
        env["DATABASE_URL"] = database_url.rsplit("/", 1)[0] + "/" + name
    return env


@pytest.fixture
def portal_server(tmp_path):
    """A fresh portal (migrated, demo tenant seeded) with daphne and a worker."""
    server = PortalServer(tmp_path, _server_env(tmp_path))
    server.manage("migrate", "--noinput")
    server.manage("seed_demo", "--operator")
    server.start()
    yield server
    server.stop()
    if server.env.get("DATABASE_URL", "").startswith("postgres") and server.env[
        "DATABASE_URL"
    ] != os.environ.get("DATABASE_URL"):
        subprocess.run(
            [
                "dropdb",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "--force",
                server.env["DATABASE_URL"].rsplit("/", 1)[1],
            ],
            check=False,
        )


def sign_in(page, server, email="owner@contoso.example", password="demo-password-123"):
    page.goto(server.url + "/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
