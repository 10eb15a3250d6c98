"""The long poll that brings portal commands to an online agent within a second or two.

An async view holds the request open on the channel layer (in-memory in the embedded
default, Redis when scaled out) until a command for this machine is queued, or until the
timeout. Holding a connection costs no database work, so it does not raise poll load.
"""

import asyncio

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.http import HttpResponse, JsonResponse

from agents.authentication import machine_from_token, touch_last_seen
from agents.services.commands import machine_group, pending_commands

MAX_WAIT_SECONDS = 55


@sync_to_async
def _authenticate(header: str):
    if not header.startswith("Bearer "):
        return None
    machine = machine_from_token(header[len("Bearer ") :])
    if machine is not None:
        touch_last_seen(machine)
    return machine


@sync_to_async
def _has_pending(machine) -> bool:
    return bool(pending_commands(machine))


async def wait_for_commands(request):
    """GET /api/agent/v1/commands/wait?timeout=25 → 200 {"pending": true} or 204 on timeout."""
    machine = await _authenticate(request.headers.get("Authorization", ""))
    if machine is None:
        return JsonResponse({"detail": "This machine's token is not valid."}, status=401)
    try:
        timeout = min(max(float(request.GET.get("timeout", 25)), 0), MAX_WAIT_SECONDS)
    except ValueError:
        return JsonResponse({"timeout": ["Give the wait in seconds."]}, status=400)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = machine_group(machine.pk)
    await layer.group_add(group, channel)
    try:
        # Checked after joining the group, so a command queued in between is not missed.
        if await _has_pending(machine):
            return JsonResponse({"pending": True})
        try:
            await asyncio.wait_for(layer.receive(channel), timeout)
        except TimeoutError:
            return HttpResponse(status=204)
        return JsonResponse({"pending": True})
    finally:
        await layer.group_discard(group, channel)
