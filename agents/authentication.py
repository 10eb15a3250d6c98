from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from agents.models import Machine
from agents.presentation import ONLINE_WITHIN
from portal import events, tokens

LAST_SEEN_RESOLUTION = timedelta(minutes=1)
OFFLINE_AFTER = ONLINE_WITHIN


class MachineUser:
    """The request's principal for agent calls: a machine, not a person."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_anonymous = False

    def __init__(self, machine):
        self.machine = machine
        self.pk = None

    def get_username(self):
        return f"agent:{self.machine.name}"

    def __str__(self):
        return self.get_username()


def machine_from_token(raw: str) -> Machine | None:
    parsed = tokens.parse(Machine.TOKEN_PREFIX, raw)
    if parsed is None:
        return None
    key_id, secret = parsed
    machine = (
        Machine.objects.select_related("policy", "vault", "tenant")
        .filter(token_key_id=key_id)
        .first()
    )
    if machine is None or not tokens.matches(secret, machine.token_hash):
        return None
    return machine


def touch_last_seen(machine):
    """At most one write a minute per machine, so a poll costs no write otherwise."""
    now = timezone.now()
    if machine.last_seen_at is None or now - machine.last_seen_at >= LAST_SEEN_RESOLUTION:
        came_back = machine.last_seen_at is None or now - machine.last_seen_at >= OFFLINE_AFTER
        Machine.objects.filter(pk=machine.pk).update(last_seen_at=now)
        machine.last_seen_at = now
        if came_back:  # pages show it online again without a reload
            events.publish_machine(machine)


class MachineTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.startswith(self.keyword + " "):
            return None
        machine = machine_from_token(header[len(self.keyword) + 1 :])
        if machine is None:
            raise exceptions.AuthenticationFailed(
                _(
                    "This machine's token is not valid. Register the machine again with a new vault credentials file."
                )
            )
        touch_last_seen(machine)
        request.machine = machine
        return MachineUser(machine), machine

    def authenticate_header(self, request):
        return self.keyword


class IsMachine(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, MachineUser)


class MachineTokenScheme(OpenApiAuthenticationExtension):
    target_class = "agents.authentication.MachineTokenAuthentication"
    name = "machineToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Machine token bpm_… from registration",
        }
