"""Two concurrent creates of one vault name on PostgreSQL: exactly one wins."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from portal.models import Region
from vaults import services
from vaults.models import Vault

pytestmark = [pytest.mark.services_only, pytest.mark.django_db(transaction=True)]


def test_concurrent_creates_of_one_name(personas, settings, request):
    from tests.conftest import require_service

    require_service(request.config, "PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    settings.TASKS_RUN_INLINE = False
    region = Region.objects.get(code="westeurope")
    barrier = threading.Barrier(2)
    outcomes = []

    class Request:
        user = personas.owner
        tenant = personas.tenant_a
        META = {}

    def create(name):
        try:
            barrier.wait()
            services.create_vault(
                Request(),
                subscription=personas.sub_a,
                name=name,
                region=region,
                resource_group=personas.rg_a,
            )
            outcomes.append("created")
        except ValidationError as exc:
            outcomes.append(" ".join(exc.messages))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=create, args=(name,)) for name in ("race-vault", "RACE-VAULT")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("created") == 1
    loser = next(outcome for outcome in outcomes if outcome != "created")
    assert "already exists in this subscription" in loser
    assert Vault.objects.filter(name__iexact="race-vault").count() == 1
