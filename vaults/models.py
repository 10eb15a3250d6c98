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


class Pack(models.Model):
    """An encrypted pack blob in the vault's storage. The portal cannot read it.

    A pack is registered once its upload is confirmed present in storage; ``machine`` is
    the key domain whose chunks it holds.
    """

    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="packs")
    machine = models.ForeignKey("agents.Machine", on_delete=models.CASCADE, related_name="packs")
    name = models.CharField(max_length=32)
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["vault", "name"], name="unique_pack_name")]

    @property
    def blob_name(self):
        return f"packs/{self.name}"


class Chunk(models.Model):
    """Opaque index entry: a keyed chunk id and where its encrypted record sits."""

    machine = models.ForeignKey("agents.Machine", on_delete=models.CASCADE, related_name="+")
    chunk_id = models.CharField(max_length=64)
    pack = models.ForeignKey(Pack, on_delete=models.CASCADE, related_name="chunks")
    offset = models.PositiveBigIntegerField()
    length = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["machine", "chunk_id"], name="unique_chunk_per_machine")
        ]


class UploadLease(models.Model):
    """A short-lived upload URL handed out for one blob; protects it from garbage collection."""

    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="+")
    machine = models.ForeignKey("agents.Machine", on_delete=models.CASCADE, related_name="+")
    blob_name = models.CharField(max_length=200)
    size = models.PositiveBigIntegerField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["vault", "blob_name"], name="unique_upload_lease")
        ]


class LivePointManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class RecoveryPoint(models.Model):
    """A committed backup of a machine: visible only once all its data is stored.

    Expired points are soft-deleted first when the vault keeps soft-deleted data: hidden from
    every list (the default manager), their packs kept until ``purge_after``.
    """

    class Kind(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        ADHOC = "adhoc", _("Ad hoc")
        OFFLINE = "offline", _("Offline seed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="recovery_points")
    machine = models.ForeignKey(
        "agents.Machine", on_delete=models.CASCADE, related_name="recovery_points"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    content = models.CharField(max_length=20, default="files")  # files or system_state
    taken_at = models.DateTimeField(db_index=True)
    manifest = models.CharField(max_length=128)
    packs = models.ManyToManyField(Pack, related_name="recovery_points")
    files = models.PositiveBigIntegerField(default=0)
    dirs = models.PositiveBigIntegerField(default=0)
    bytes_scanned = models.PositiveBigIntegerField(default=0)
    bytes_new = models.PositiveBigIntegerField(default=0)
    bytes_stored = models.PositiveBigIntegerField(default=0)
    warnings = models.PositiveIntegerField(default=0)
    retain_until = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    kept_by = models.JSONField(default=list, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    purge_after = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LivePointManager()
    all_points = models.Manager()

    scope_fields = ScopeFields(
        subscription="vault__subscription", resource_group="vault__resource_group", vault="vault"
    )
    resource_type = _("Recovery point")

    class Meta:
        ordering = ["-taken_at"]
        indexes = [models.Index(fields=["machine", "-taken_at"])]

    def scope_ids(self):
        return self.vault.subscription_id, self.vault.resource_group_id, self.vault_id
