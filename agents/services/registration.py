"""Registering a machine with a vault credentials file, and rotating its token."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from agents.models import Machine
from policies.schedule import PolicyValidationError, parse_time_zone
from portal import audit, tokens
from vaults.models import VaultCredential, VaultState


class RegistrationRefused(ValidationError):
    pass


def _credential(secret: str) -> VaultCredential:
    parsed = tokens.parse(VaultCredential.PREFIX, secret or "")
    forged = RegistrationRefused(
        _(
            "This vault credentials file is not valid for this portal. Download a new one from the vault's Getting started → Backup page."
        )
    )
    if parsed is None:
        raise forged
    key_id, plain = parsed
    credential = (
        VaultCredential.objects.select_related("vault", "vault__tenant")
        .filter(key_id=key_id)
        .first()
    )
    if credential is None or not tokens.matches(plain, credential.secret_hash):
        raise forged
    if credential.expires_at <= timezone.now():
        raise RegistrationRefused(
            _(
                "This vault credentials file expired on %(date)s. Download a new one from the portal."
            )
            % {"date": date_format(credential.expires_at, "DATETIME_FORMAT")}
        )
    if credential.used_at is not None:
        raise RegistrationRefused(
            _(
                "This vault credentials file was already used to register a machine. Download a new one for each machine."
            )
        )
    if credential.vault.state != VaultState.SUCCEEDED:
        raise RegistrationRefused(
            _("The vault is not available (state: %(state)s).") % {"state": credential.vault.state}
        )
    return credential


def register_machine(
    request, *, secret, host_name, os_name, agent_version, time_zone, reregister=False
):
    """Exchange a one-use registration secret for a machine id and token.

    A host name already registered in the vault is refused unless ``reregister`` asks to
    take that machine over (its token is rotated; its data and keys stay).
    """
    credential = _credential(secret)
    vault = credential.vault
    host_name = (host_name or "").strip()
    if not host_name or len(host_name) > 253:
        raise RegistrationRefused(
            {"host_name": _("Send the machine's host name (1 to 253 characters).")}
        )
    try:
        parse_time_zone(time_zone or "UTC")
    except PolicyValidationError:
        time_zone = "UTC"
    issued = tokens.issue(Machine.TOKEN_PREFIX)
    with transaction.atomic():
        # Compare-and-set: of two registrations with one file, only one proceeds.
        if not VaultCredential.objects.filter(pk=credential.pk, used_at__isnull=True).update(
            used_at=timezone.now()
        ):
            raise RegistrationRefused(
                _("This vault credentials file was already used to register a machine.")
            )
        machine = (
            Machine.objects.select_for_update().filter(vault=vault, name__iexact=host_name).first()
        )
        if machine is not None and not reregister:
            raise RegistrationRefused(
                {
                    "host_name": _(
                        "A machine named %(name)s is already registered in vault %(vault)s. To replace it, register again with --reregister."
                    )
                    % {"name": host_name, "vault": vault.name}
                }
            )
        fields = {
            "os_name": (os_name or "")[:200],
            "agent_version": (agent_version or "")[:40],
            "time_zone": time_zone or "UTC",
            "token_key_id": issued.key_id,
            "token_hash": issued.secret_hash,
        }
        try:
            if machine is None:
                machine = Machine.objects.create(
                    tenant=vault.tenant, vault=vault, name=host_name, **fields
                )
                action = "machine.register"
            else:
                for field, value in fields.items():
                    setattr(machine, field, value)
                machine.settings_version += 1
                machine.save()
                action = "machine.reregister"
        except IntegrityError as exc:
            raise RegistrationRefused(
                {
                    "host_name": _("A machine named %(name)s is already registered.")
                    % {"name": host_name}
                }
            ) from exc
        audit.record(
            request,
            action,
            machine,
            tenant=vault.tenant,
            actor_label=f"agent:{host_name}",
            key_id=credential.key_id,
        )
    return machine, issued.token


def store_key_blob(request, machine, blob: bytes, pin: str = ""):
    """Store the wrapped keys. The first upload comes with registration; replacing keys
    (a new passphrase) is a critical operation and needs the vault's security PIN."""
    from vaults.services import consume_security_pin

    if not blob or len(blob) > 64 * 1024:
        raise ValidationError({"key_blob": _("Send the wrapped key blob (at most 64 KiB).")})
    with transaction.atomic():
        replacing = bool(
            Machine.objects.filter(pk=machine.pk).exclude(key_blob=b"").values_list("pk", flat=True)
        )
        if replacing:
            consume_security_pin(machine.vault, pin)
        Machine.objects.filter(pk=machine.pk).update(key_blob=blob)
        audit.record(
            request,
            "machine.keys.update",
            machine,
            actor_label=f"agent:{machine.name}",
            replaced=replacing,
        )
