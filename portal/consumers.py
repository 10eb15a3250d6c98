"""The one websocket consumer: live events for the groups its user may see.

A browser joins its own user group (notifications) on connect and asks for vault and job
groups; each subscription is authorized with the same scoping as the API and re-checked
when the user's roles change. Signing out closes the socket.
"""

import json
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from portal.events import group_name, relay

SUBSCRIBABLE = ("vault", "job")


def _visible(user, tenant_id, kind: str, pk) -> bool:
    from agents.models import Job
    from portal.access import forget_grants, scoped
    from portal.tenancy import tenants_for
    from vaults.models import Vault

    tenant = tenants_for(user).filter(pk=tenant_id).first()
    if tenant is None:
        return False
    forget_grants(user)  # roles may have changed since the socket opened
    model = {"vault": Vault, "job": Job}[kind]
    return scoped(model.objects.filter(pk=pk), user, tenant).exists()


@database_sync_to_async
def _current_tenant_id(scope):
    from portal.tenancy import tenants_for

    session_choice = scope["session"].get("tenant_id")
    tenants = tenants_for(scope["user"])
    tenant = tenants.filter(pk=session_choice).first() if session_choice else None
    tenant = tenant or tenants.first()
    return tenant.pk if tenant else None


class EventsConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.tenant_id = await _current_tenant_id(self.scope)
        if self.tenant_id is None:
            await self.close(code=4403)
            return
        self.subscriptions: set[tuple[str, str]] = set()
        self.user_group = group_name("user", user.pk)
        await self.channel_layer.group_add(self.user_group, self.channel_name)
        await self.accept()
        relay.ensure_running(self.channel_layer)

    async def disconnect(self, code):
        if hasattr(self, "user_group"):
            await self.channel_layer.group_discard(self.user_group, self.channel_name)
            for kind, pk in list(getattr(self, "subscriptions", ())):
                await self.channel_layer.group_discard(group_name(kind, pk), self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            message = json.loads(text_data or "")
            kind, pk = message["subscribe"], str(uuid.UUID(str(message["id"])))
        except (ValueError, KeyError, TypeError):
            await self.send(
                json.dumps({"error": 'Send {"subscribe": "vault"|"job", "id": "<uuid>"}.'})
            )
            return
        if kind not in SUBSCRIBABLE:
            await self.send(json.dumps({"error": f"Cannot subscribe to {kind!r}."}))
            return
        allowed = await database_sync_to_async(_visible)(
            self.scope["user"], self.tenant_id, kind, pk
        )
        if not allowed:
            await self.send(json.dumps({"subscribed": kind, "id": pk, "ok": False}))
            return
        self.subscriptions.add((kind, pk))
        await self.channel_layer.group_add(group_name(kind, pk), self.channel_name)
        await self.send(json.dumps({"subscribed": kind, "id": pk, "ok": True}))

    async def portal_event(self, event):
        await self.send(event["text"])

    async def access_changed(self, event):
        """Roles changed: drop every group the user may no longer see."""
        for kind, pk in list(self.subscriptions):
            if not await database_sync_to_async(_visible)(
                self.scope["user"], self.tenant_id, kind, pk
            ):
                self.subscriptions.discard((kind, pk))
                await self.channel_layer.group_discard(group_name(kind, pk), self.channel_name)
                await self.send(json.dumps({"unsubscribed": kind, "id": pk}))

    async def session_ended(self, event):
        await self.close(code=4401)
