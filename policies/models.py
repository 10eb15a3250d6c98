import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.models import Tenant
from portal.scope import ScopeFields


class BackupPolicy(models.Model):
    """What a machine backs up, when, and for how long: the reference's Schedule Backup wizard.

    ``schedule`` and ``retention`` hold the JSON form of the pure engines' dataclasses
    (policies/documents.py converts); ``version`` grows with every change so an agent's
    cached copy is known stale.
    """

    class InitialBackup(models.TextChoices):
        NETWORK = "network", _("Automatically over the network")
        OFFLINE = "offline", _("Offline")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    vault = models.ForeignKey("vaults.Vault", on_delete=models.CASCADE, related_name="policies")
    name = models.CharField(_("name"), max_length=80)
    items = models.JSONField(_("items to back up"), default=list)
    exclusions = models.JSONField(_("exclusions"), default=list)
    system_state = models.BooleanField(_("System State"), default=False)
    schedule = models.JSONField(_("schedule"))
    retention = models.JSONField(_("retention"))
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    initial_backup = models.CharField(
        _("initial backup type"), max_length=10, choices=InitialBackup.choices, default="network"
    )
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    resource_type = _("Backup policy")
    scope_fields = ScopeFields(
        subscription="vault__subscription", resource_group="vault__resource_group", vault="vault"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                models.functions.Lower("name"), "vault", name="unique_policy_name_in_vault"
            )
        ]

    def __str__(self):
        return self.name

    @property
    def path(self):
        return f"{self.vault.path}/backupPolicies/{self.id}"

    def scope_ids(self):
        return self.vault.subscription_id, self.vault.resource_group_id, self.vault_id
