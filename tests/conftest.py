"""Shared fixtures: personas in two tenants, and the real services some tests need.

Tests that need PostgreSQL, Redis or Azurite call ``require_service``; without the
service they skip, unless pytest runs with ``--require-services`` (CI), where a skip of
that kind is a failure.
"""

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import translation

ROOT = Path(__file__).resolve().parent.parent
SERVICE_SKIP = "service unavailable: "
AZURITE_ACCOUNT = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
)


def pytest_addoption(parser):
    parser.addoption(
        "--require-services",
        action="store_true",
        default=os.environ.get("REQUIRE_SERVICES") == "1",
        help="fail instead of skipping when PostgreSQL, Redis or Azurite is missing",
    )


def require_service(config, name: str, available: bool):
    if available:
        return
    if config.getoption("--require-services"):
        pytest.fail(f"{name} is required (--require-services) but not reachable")
    pytest.skip(SERVICE_SKIP + name)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def azurite_connection_string(request, tmp_path_factory):
    """An Azurite blob endpoint: the one in the environment, or one started for the session."""
    configured = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if configured:
        yield configured
        return
    binary = ROOT / "node_modules" / ".bin" / "azurite-blob"
    require_service(request.config, "Azurite (npm install)", binary.exists())
    port = _free_port()
    location = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(location),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not _port_open("127.0.0.1", port):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            require_service(request.config, "Azurite (did not start)", False)
        time.sleep(0.1)
    yield AZURITE_ACCOUNT.format(port=port)
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(location, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(request):
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    require_service(request.config, "Redis", _port_open("127.0.0.1", 6379))
    return url


@dataclass
class Personas:
    tenant_a: object
    tenant_b: object
    sub_a: object
    sub_b: object
    rg_a: object
    rg_b: object
    owner: object
    contributor: object
    operator: object
    reader: object
    owner_b: object
    platform: object

    def all_of_a(self):
        return [self.owner, self.contributor, self.operator, self.reader]


def make_user(email, **extra):
    user = get_user_model().objects.create_user(
        username=email, email=email, password="pw-Secret-123", **extra
    )
    return user


@pytest.fixture
def personas(db):
    from portal.models import (
        Membership,
        Region,
        ResourceGroup,
        RoleAssignment,
        Subscription,
        Tenant,
    )
    from portal.regions import load_regions

    load_regions(Region)  # transactional tests flush the migration's rows
    region = Region.objects.get(code="westeurope")
    tenant_a = Tenant.objects.create(name="Contoso", domain="contoso")
    tenant_b = Tenant.objects.create(name="Fabrikam", domain="fabrikam")
    sub_a = Subscription.objects.create(tenant=tenant_a, name="contoso-prod")
    sub_b = Subscription.objects.create(tenant=tenant_b, name="fabrikam-prod")
    rg_a = ResourceGroup.objects.create(
        tenant=tenant_a, subscription=sub_a, name="rg-a", region=region
    )
    rg_b = ResourceGroup.objects.create(
        tenant=tenant_b, subscription=sub_b, name="rg-b", region=region
    )
    users = {}
    for key, tenant, sub, role in [
        ("owner", tenant_a, sub_a, "owner"),
        ("contributor", tenant_a, sub_a, "contributor"),
        ("operator", tenant_a, sub_a, "backup_operator"),
        ("reader", tenant_a, sub_a, "reader"),
        ("owner_b", tenant_b, sub_b, "owner"),
    ]:
        user = make_user(f"{key}@{tenant.domain}.example")
        Membership.objects.create(tenant=tenant, user=user)
        RoleAssignment.objects.create(tenant=tenant, user=user, role=role, subscription=sub)
        users[key] = user
    platform = make_user("ops@platform.example", is_staff=True)
    return Personas(tenant_a, tenant_b, sub_a, sub_b, rg_a, rg_b, platform=platform, **users)


@pytest.fixture
def client_for(client):
    """A test client signed in as the given user."""
    from django.test import Client

    def make(user):
        c = Client()
        c.force_login(user)
        return c

    return make


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts in the default language: a request as a user with a language
    preference activates it on the thread, and the policy engines translate in whatever
    language is active when they are called."""
    translation.deactivate()
    yield
    translation.deactivate()


def pytest_collection_modifyitems(config, items):
    """Browser tests last: Playwright's sync API keeps an event loop running in the main
    thread for the rest of the session, which asyncio tests cannot run beside."""
    browser_fixtures = {"page", "browser", "context"}
    items.sort(key=lambda item: bool(browser_fixtures & set(getattr(item, "fixturenames", ()))))
