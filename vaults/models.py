import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from portal.models import Region, ResourceGroup, Subscription, Tenant
from portal.scope import ScopeFields


class Redundancy(models.TextChoices):
    GEO = "geo", _("Geo-redundant")
    LOCAL = "local", _("Locally-redundant")
    ZONE = "zone", _("Zone-redundant")


class Immutability(models.TextChoices):
    DISABLED = "disabled", _("Disabled")
    ENABLED = "enabled", _("Enabled")
    LOCKED = "locked", _("Enabled and locked")


class VaultState(models.TextChoices):
    DEPLOYING = "deploying", _("Deploying")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    DELETING = "deleting", _("Deleting")


class Vault(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="vaults")
    resource_group = models.ForeignKey(
        ResourceGroup, on_delete=models.PROTECT, related_name="vaults"
    )
    name = models.CharField(_("name"), max_length=50)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, verbose_name=_("region"))
    state = models.CharField(max_length=12, choices=VaultState.choices, default="deploying")
    state_reason = models.TextField(blank=True)
    redundancy = models.CharField(
        _("storage replication type"), max_length=8, choices=Redundancy.choices, default="geo"
    )
    soft_delete_enabled = models.BooleanField(_("soft delete"), default=True)
    soft_delete_days = models.PositiveSmallIntegerField(_("soft delete retention"), default=14)
    immutability = models.CharField(
        _("immutability"), max_length=10, choices=Immutability.choices, default="disabled"
    )
    storage_bytes = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    resource_type = _("Recovery Services vault")
    scope_fields = ScopeFields(
        subscription="subscription", resource_group="resource_group", vault="id"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"), "subscription", name="unique_vault_name_in_subscription"
            )
        ]

    def __str__(self):
        return self.name

    @property
    def path(self):
        group = f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group_id}"
        return f"{group}/vaults/{self.id}"

    def scope_ids(self):
        return self.subscription_id, self.resource_group_id, self.id

    @property
    def container_name(self):
        return f"vault-{self.id.hex}"


class VaultCredential(models.Model):
    """A downloaded vault credentials file: only the hash of its one-use secret is kept."""

    PREFIX = "bpr"
    VALID_DAYS = 10

    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="credentials")
    key_id = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)


class SecurityPin(models.Model):
    """A short-lived PIN that critical operations on a vault require. Shown once, used once."""

    VALID_MINUTES = 5

    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="security_pins")
    pin_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
