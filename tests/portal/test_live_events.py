"""The websocket consumer: only permitted groups, delivery after commit, revocation."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from agents.models import Machine
from portal import events
from portal.consumers import EventsConsumer
from vaults.models import Vault

pytestmark = [pytest.mark.django_db(transaction=True)]
MEMORY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = MEMORY_LAYER
    events.mark_web_process()


def app_for(user):
    consumer = EventsConsumer.as_asgi()

    async def app(scope, receive, send):
        return await consumer({**scope, "user": user, "session": {}}, receive, send)

    return app


@pytest.fixture
def world(personas):
    vault_a = Vault.objects.create(
        tenant=personas.tenant_a,
        subscription=personas.sub_a,
        resource_group=personas.rg_a,
        name="vault-a",
        region_id="westeurope",
        state="succeeded",
    )
    vault_b = Vault.objects.create(
        tenant=personas.tenant_b,
        subscription=personas.sub_b,
        resource_group=personas.rg_b,
        name="vault-b",
        region_id="westeurope",
        state="succeeded",
    )
    machine_a = Machine.objects.create(
        tenant=personas.tenant_a, vault=vault_a, name="a1", token_key_id="k-a", token_hash="x"
    )
    machine_b = Machine.objects.create(
        tenant=personas.tenant_b, vault=vault_b, name="b1", token_key_id="k-b", token_hash="x"
    )
    return vault_a, vault_b, machine_a, machine_b


async def connect(user):
    communicator = WebsocketCommunicator(app_for(user), "/ws/events/")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def subscribe(communicator, kind, pk):
    await communicator.send_to(text_data=json.dumps({"subscribe": kind, "id": str(pk)}))
    return json.loads(await communicator.receive_from())


@database_sync_to_async
def start_job(machine):
    from agents.services.jobs import open_job

    class AgentRequest:
        user = None
        META = {}

    return open_job(AgentRequest(), machine, kind="backup", trigger="adhoc")


async def test_only_permitted_groups_and_no_foreign_job_arrives(personas, world):
    vault_a, vault_b, machine_a, machine_b = world
    owner_b = await connect(personas.owner_b)
    assert (await subscribe(owner_b, "vault", vault_a.pk))["ok"] is False
    assert (await subscribe(owner_b, "vault", vault_b.pk))["ok"] is True
    reader_a = await connect(personas.reader)
    assert (await subscribe(reader_a, "vault", vault_a.pk))["ok"] is True

    job = await start_job(machine_a)
    message = json.loads(await reader_a.receive_from(timeout=2))
    assert message["kind"] == "job" and message["payload"]["id"] == str(job.pk)
    assert message["payload"]["machine"] == "a1" and message["payload"]["state"] == "in_progress"
    assert await owner_b.receive_nothing(timeout=0.3)
    await owner_b.disconnect()
    await reader_a.disconnect()


async def test_removed_role_stops_delivery(personas, world):
    from portal.models import RoleAssignment

    vault_a, _vault_b, machine_a, _machine_b = world
    reader = await connect(personas.reader)
    assert (await subscribe(reader, "vault", vault_a.pk))["ok"] is True

    @database_sync_to_async
    def revoke():
        class OwnerRequest:
            user = personas.owner
            tenant = personas.tenant_a
            META = {}

        from portal.services import remove_role_assignment

        remove_role_assignment(OwnerRequest(), RoleAssignment.objects.get(user=personas.reader))

    await revoke()
    assert json.loads(await reader.receive_from(timeout=2)) == {
        "unsubscribed": "vault",
        "id": str(vault_a.pk),
    }
    await start_job(machine_a)
    assert await reader.receive_nothing(timeout=0.3)
    await reader.disconnect()


async def test_strangers_and_malformed_messages(personas, world):
    from django.contrib.auth.models import AnonymousUser

    communicator = WebsocketCommunicator(app_for(AnonymousUser()), "/ws/events/")
    connected, code = await communicator.connect()
    assert not connected
    owner = await connect(personas.owner)
    await owner.send_to(text_data="not json")
    assert "error" in json.loads(await owner.receive_from())
    await owner.send_to(
        text_data=json.dumps({"subscribe": "tenant", "id": str(personas.tenant_a.pk)})
    )
    assert "error" in json.loads(await owner.receive_from())
    await owner.disconnect()


async def test_notifications_reach_their_user_only(personas, world):
    owner = await connect(personas.owner)
    reader = await connect(personas.reader)

    @database_sync_to_async
    def notify_owner():
        from portal.notifications import notify

        notify(personas.owner, personas.tenant_a, title="Deployment succeeded", level="success")

    await notify_owner()
    message = json.loads(await owner.receive_from(timeout=2))
    assert (
        message["kind"] == "notification" and message["payload"]["title"] == "Deployment succeeded"
    )
    assert await reader.receive_nothing(timeout=0.3)
    await owner.disconnect()
    await reader.disconnect()


async def test_worker_events_are_relayed_through_the_outbox(personas, world, monkeypatch):
    _vault_a, _vault_b, machine_a, _machine_b = world
    reader = await connect(personas.reader)
    assert (await subscribe(reader, "vault", machine_a.vault_id))["ok"] is True
    monkeypatch.setattr(events, "_in_web_process", False)  # as in the worker process
    job = await start_job(machine_a)
    from portal.models import EventOutbox

    assert await database_sync_to_async(EventOutbox.objects.count)() == 1
    message = json.loads(await reader.receive_from(timeout=2))
    assert message["payload"]["id"] == str(job.pk)
    await reader.disconnect()
