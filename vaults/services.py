"""Business rules for Recovery Services vaults: create, deploy, configure, credentials, delete."""

import json
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from portal import audit, tokens
from portal.access import Action
from portal.events import publish_vault
from portal.notifications import language_of, notify
from portal.services import create_resource_group, require
from portal.tasks import enqueue
from vaults.models import Immutability, SecurityPin, Vault, VaultCredential, VaultState

MAX_VAULTS_PER_SUBSCRIPTION = 500
SOFT_DELETE_DAYS = (14, 180)
_NAME_CHARS = re.compile(r"^[A-Za-z0-9-]*$")


def vault_name_errors(name: str, subscription=None, *, exclude_pk=None) -> list[str]:
    """The reference's naming rules, in the words the portal and the API both show."""
    errors = []
    if not 2 <= len(name) <= 50:
        errors.append(_("The name must be 2 to 50 characters long."))
    if name and not (name[0].isascii() and name[0].isalpha()):
        errors.append(_("The name must start with a letter."))
    if not _NAME_CHARS.match(name):
        errors.append(_("The name can contain only letters, numbers and hyphens."))
    if not errors and subscription is not None:
        taken = Vault.objects.filter(subscription=subscription, name__iexact=name)
        if exclude_pk:
            taken = taken.exclude(pk=exclude_pk)
        if taken.exists():
            errors.append(
                _("A vault named %(name)s already exists in this subscription.") % {"name": name}
            )
    return errors


def _check_quotas(subscription):
    tenant = subscription.tenant
    if Vault.objects.filter(subscription=subscription).count() >= MAX_VAULTS_PER_SUBSCRIPTION:
        raise ValidationError(
            _(
                "A subscription holds at most %(max)s vaults. Delete a vault or use another subscription."
            )
            % {"max": MAX_VAULTS_PER_SUBSCRIPTION}
        )
    if Vault.objects.filter(tenant=tenant).count() >= tenant.max_vaults:
        raise ValidationError(
            _(
                "Your directory's quota of %(max)s vaults is used up. Ask a platform operator to raise it."
            )
            % {"max": tenant.max_vaults}
        )
    used = Vault.objects.filter(tenant=tenant).aggregate(total=Sum("storage_bytes"))["total"] or 0
    if used >= tenant.max_storage_bytes:
        raise ValidationError(
            _("Your directory's storage quota is used up. Ask a platform operator to raise it.")
        )


def create_vault(
    request, *, subscription, name, region, resource_group=None, new_resource_group=""
):
    """Create a vault record (state Deploying) and queue its deployment."""
    if resource_group is None and not new_resource_group:
        raise ValidationError({"resource_group": _("Choose a resource group or create a new one.")})
    scope = resource_group or subscription
    require(request.user, request.tenant, scope, Action.WRITE)
    errors = vault_name_errors(name, subscription)
    if errors:
        raise ValidationError({"name": errors})
    _check_quotas(subscription)
    try:
        with transaction.atomic():
            if resource_group is None:
                resource_group = create_resource_group(
                    request, subscription, name=new_resource_group, region=region
                )
            vault = Vault.objects.create(
                tenant=subscription.tenant,
                subscription=subscription,
                resource_group=resource_group,
                name=name,
                region=region,
                created_by=request.user,
            )
            audit.record(request, "vault.create", vault, region=region.code)
            _notify_deployment(vault, request.user)
            enqueue("vaults.tasks.deploy_vault", str(vault.pk))
    except IntegrityError as exc:
        raise ValidationError(
            {
                "name": _("A vault named %(name)s already exists in this subscription.")
                % {"name": name}
            }
        ) from exc
    return vault


def _notify_deployment(vault, user):
    if user is None:
        return
    with translation.override(language_of(user)):
        _notify_deployment_in_language(vault, user)


def _notify_deployment_in_language(vault, user):
    link = reverse("vault-detail", args=[vault.pk])
    messages = {
        VaultState.DEPLOYING: (
            "progress",
            _("Deployment in progress…"),
            _("Deploying Recovery Services vault %(name)s."),
        ),
        VaultState.SUCCEEDED: (
            "success",
            _("Deployment succeeded"),
            _("Recovery Services vault %(name)s is ready."),
        ),
        VaultState.FAILED: (
            "error",
            _("Deployment failed"),
            _("Recovery Services vault %(name)s could not be deployed: %(reason)s"),
        ),
    }
    level, title, body = messages[vault.state]
    notify(
        user,
        vault.tenant,
        key=f"deploy:{vault.pk}",
        level=level,
        title=title,
        body=body % {"name": vault.name, "reason": vault.state_reason},
        link=link
        if vault.state == VaultState.SUCCEEDED
        else reverse("vault-deployment", args=[vault.pk]),
        link_label=_("Go to resource")
        if vault.state == VaultState.SUCCEEDED
        else _("Open deployment"),
    )


def deploy_vault(vault_id):
    """Create the vault's storage. Runs in the worker; safe to run twice."""
    from vaults.storage import StorageError, get_blob_store

    vault = Vault.objects.select_related("tenant").filter(pk=vault_id).first()
    if vault is None or vault.state != VaultState.DEPLOYING:
        return
    try:
        get_blob_store().create_container(vault.container_name)
    except (StorageError, OSError) as exc:
        vault.state, vault.state_reason = VaultState.FAILED, str(exc)[:500] or type(exc).__name__
    else:
        vault.state, vault.state_reason = VaultState.SUCCEEDED, ""
    with transaction.atomic():
        vault.save(update_fields=["state", "state_reason", "updated_at"])
        publish_vault(vault)
        audit.record(
            None,
            "vault.deploy",
            vault,
            actor=vault.created_by,
            status="succeeded" if vault.state == VaultState.SUCCEEDED else "failed",
            reason=vault.state_reason,
        )
        _notify_deployment(vault, vault.created_by)


def retry_deployment(request, vault):
    require(request.user, request.tenant, vault, Action.WRITE)
    if vault.state != VaultState.FAILED:
        raise ValidationError(_("Only a failed deployment can be retried."))
    with transaction.atomic():
        vault.state, vault.state_reason = VaultState.DEPLOYING, ""
        vault.save(update_fields=["state", "state_reason", "updated_at"])
        audit.record(request, "vault.deploy.retry", vault)
        _notify_deployment(vault, request.user)
        enqueue("vaults.tasks.deploy_vault", str(vault.pk))


def has_backup_data(vault) -> bool:
    return vault.storage_bytes > 0


def update_redundancy(request, vault, redundancy: str):
    require(request.user, request.tenant, vault, Action.WRITE)
    if has_backup_data(vault) and redundancy != vault.redundancy:
        raise ValidationError(
            {
                "redundancy": _(
                    "The storage replication type cannot change once the vault holds backup data."
                )
            }
        )
    with transaction.atomic():
        old = vault.redundancy
        vault.redundancy = redundancy
        vault.full_clean(validate_unique=False, validate_constraints=False)
        vault.save(update_fields=["redundancy", "updated_at"])
        audit.record(request, "vault.redundancy.update", vault, old=old, new=redundancy)


def update_security(request, vault, *, soft_delete_enabled, soft_delete_days, immutability, pin=""):
    """Soft delete and immutability. Turning protection down is a critical operation."""
    require(request.user, request.tenant, vault, Action.WRITE)
    low, high = SOFT_DELETE_DAYS
    if not low <= soft_delete_days <= high:
        raise ValidationError(
            {
                "soft_delete_days": _("Keep soft-deleted data %(low)s to %(high)s days.")
                % {"low": low, "high": high}
            }
        )
    if vault.immutability == Immutability.LOCKED and immutability != Immutability.LOCKED:
        raise ValidationError({"immutability": _("Locked immutability cannot be undone.")})
    weakens = (vault.soft_delete_enabled and not soft_delete_enabled) or (
        vault.immutability == Immutability.ENABLED and immutability == Immutability.DISABLED
    )
    with transaction.atomic():
        if weakens:
            consume_security_pin(vault, pin)
        changes = {
            "soft_delete_enabled": soft_delete_enabled,
            "soft_delete_days": soft_delete_days,
            "immutability": immutability,
        }
        old = {field: getattr(vault, field) for field in changes}
        for field, value in changes.items():
            setattr(vault, field, value)
        vault.full_clean(validate_unique=False, validate_constraints=False)
        vault.save(update_fields=[*changes, "updated_at"])
        audit.record(request, "vault.security.update", vault, old=old, new=changes)


def generate_security_pin(request, vault) -> str:
    require(request.user, request.tenant, vault, Action.OPERATE)
    pin = f"{secrets.randbelow(10**8):08d}"
    with transaction.atomic():
        SecurityPin.objects.create(
            vault=vault,
            pin_hash=tokens.hash_secret(f"{vault.pk}:{pin}"),
            created_by=request.user,
            expires_at=timezone.now() + timedelta(minutes=SecurityPin.VALID_MINUTES),
        )
        audit.record(request, "vault.security_pin.generate", vault)
    return pin


def consume_security_pin(vault, pin: str):
    """Use up a valid PIN for ``vault`` or raise; a PIN works once, within 5 minutes."""
    message = _("Enter a valid security PIN. Generate one under Properties → Security settings.")
    pin = (pin or "").strip()
    if not re.fullmatch(r"\d{8}", pin):
        raise ValidationError({"pin": message})
    now = timezone.now()
    candidate = SecurityPin.objects.filter(
        vault=vault,
        pin_hash=tokens.hash_secret(f"{vault.pk}:{pin}"),
        used_at__isnull=True,
        expires_at__gt=now,
    ).first()
    # Compare-and-set: of two requests with one PIN, only one marks it used.
    if candidate is None or not SecurityPin.objects.filter(
        pk=candidate.pk, used_at__isnull=True
    ).update(used_at=now):
        raise ValidationError({"pin": message})


def issue_credentials(request, vault) -> tuple[str, bytes]:
    """A new vault credentials file; older unexpired files stay valid."""
    require(request.user, request.tenant, vault, Action.OPERATE)
    if vault.state != VaultState.SUCCEEDED:
        raise ValidationError(_("The vault is not deployed yet."))
    issued = tokens.issue(VaultCredential.PREFIX)
    expires = timezone.now() + timedelta(days=VaultCredential.VALID_DAYS)
    with transaction.atomic():
        VaultCredential.objects.create(
            vault=vault,
            key_id=issued.key_id,
            secret_hash=issued.secret_hash,
            expires_at=expires,
            created_by=request.user,
        )
        audit.record(request, "vault.credentials.download", vault, key_id=issued.key_id)
    document = {
        "format": "backup-portal-vault-credentials/1",
        "portal_url": settings.PORTAL_URL,
        "vault_id": str(vault.pk),
        "vault_name": vault.name,
        "subscription_id": str(vault.subscription_id),
        "subscription_name": vault.subscription.name,
        "resource_group": vault.resource_group.name,
        "region": vault.region_id,
        "registration_secret": issued.token,
        "expires_at": expires.isoformat(),
    }
    filename = f"{vault.name}_{timezone.now():%Y-%m-%d}.VaultCredentials"
    return filename, json.dumps(document, indent=2).encode()


def deletion_blockers(vault) -> list[str]:
    reasons = []
    machines = getattr(vault, "machines", None)
    if machines is not None and machines.exists():
        reasons.append(_("Unregister the protected servers of this vault first."))
    if has_backup_data(vault):
        reasons.append(_("The vault still holds backup data, soft-deleted data included."))
    return reasons


def delete_vault(request, vault):
    require(request.user, request.tenant, vault, Action.WRITE)
    reasons = deletion_blockers(vault)
    if reasons:
        raise ValidationError(reasons)
    with transaction.atomic():
        vault.state = VaultState.DELETING
        vault.save(update_fields=["state", "updated_at"])
        audit.record(request, "vault.delete", vault)
        enqueue("vaults.tasks.remove_vault", str(vault.pk))


def remove_vault(vault_id):
    """Remove a vault's storage, then the vault. Runs in the worker."""
    from vaults.storage import get_blob_store

    vault = Vault.objects.filter(pk=vault_id, state=VaultState.DELETING).first()
    if vault is None:
        return
    get_blob_store().delete_container(vault.container_name)
    vault.delete()
