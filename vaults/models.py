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

    scope_fields = ScopeFields(
        subscription="vault__subscription", resource_group="vault__resource_group", vault="vault"
    )
    resource_type = _("Recovery point")

    all_points = models.Manager()
    objects = LivePointManager()

    class Meta:
        default_manager_name = "objects"
        ordering = ["-taken_at"]
        indexes = [models.Index(fields=["machine", "-taken_at"])]

    def scope_ids(self):
        return self.vault.subscription_id, self.vault.resource_group_id, self.vault_id


# Alerts and monitoring ------------------------------------------------------------------


class AlertKind(models.TextChoices):
    BACKUP_FAILED = "backup_failed", _("Backup failed")
    RESTORE_FAILED = "restore_failed", _("Restore failed")
    BACKUP_MISSED = "backup_missed", _("Backup missed")
    AGENT_OFFLINE = "agent_offline", _("Agent offline")
    AGENT_OUTDATED = "agent_outdated", _("Agent out of date")
    CREDENTIALS_EXPIRING = "credentials_expiring", _("Vault credentials expiring unused")
    QUOTA_WARNING = "quota_warning", _("Storage quota almost used")
    QUOTA_EXCEEDED = "quota_exceeded", _("Storage quota used up")


class Alert(models.Model):
    """A condition someone should look at, raised once and resolved when it clears.

    ``key`` names the condition (kind and subject); at most one active alert holds a key,
    so two watchdogs racing to raise the same alert cannot both succeed. An alert with no
    vault belongs to the whole directory (the storage quota).
    """

    class Severity(models.TextChoices):
        CRITICAL = "critical", _("Critical")
        WARNING = "warning", _("Warning")

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        RESOLVED = "resolved", _("Resolved")

    class Resolution(models.TextChoices):
        CLEARED = "cleared", _("The condition cleared")
        MANUAL = "manual", _("Resolved by a user")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    vault = models.ForeignKey(
        Vault, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    machine = models.ForeignKey(
        "agents.Machine", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(
        "agents.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(_("alert type"), max_length=30, choices=AlertKind.choices)
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default="active")
    key = models.CharField(max_length=160)
    subject_id = models.CharField(max_length=64)
    subject_name = models.CharField(max_length=253, blank=True)
    details = models.JSONField(default=dict, blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    raised_at = models.DateTimeField(db_index=True)
    last_occurred_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Resolved by hand while its condition persists: not raised again until it clears.
    silenced = models.BooleanField(default=False)

    resource_type = _("Backup alert")
    scope_fields = ScopeFields(
        subscription="vault__subscription", resource_group="vault__resource_group", vault="vault"
    )

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(state="active"), name="unique_active_alert"
            )
        ]
        indexes = [
            models.Index(fields=["key"]),
            models.Index(fields=["tenant", "state", "severity"]),
            models.Index(fields=["vault", "state", "-raised_at"]),
            models.Index(fields=["machine", "kind", "state"]),
        ]

    def __str__(self):
        return self.name

    @property
    def name(self):
        label = self.get_kind_display()
        return f"{label}: {self.subject_name}" if self.subject_name else str(label)

    @property
    def path(self):
        prefix = self.vault.path if self.vault_id else f"/tenants/{self.tenant_id}"
        return f"{prefix}/alerts/{self.id}"

    def scope_ids(self):
        if not self.vault_id:
            return None, None, None
        return self.vault.subscription_id, self.vault.resource_group_id, self.vault_id


class VaultWebhook(models.Model):
    """An outgoing webhook: alert events POSTed as signed JSON to a URL of the tenant's."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(_("payload URL"), max_length=500)
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(_("enabled"), default=True)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    resource_type = _("Webhook")
    scope_fields = ScopeFields(
        subscription="vault__subscription", resource_group="vault__resource_group", vault="vault"
    )

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.url

    @property
    def name(self):
        return self.url

    @property
    def path(self):
        return f"{self.vault.path}/webhooks/{self.id}"

    def scope_ids(self):
        return self.vault.subscription_id, self.vault.resource_group_id, self.vault_id


class AlertDelivery(models.Model):
    """One alert sent to one recipient (e-mail) or one webhook event: sent exactly once.

    Workers claim a row with a compare-and-set update before sending; a failed send frees
    it for a retry with backoff, up to ``MAX_ATTEMPTS``.
    """

    MAX_ATTEMPTS = 5

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        WEBHOOK = "webhook", _("Webhook")

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    event = models.CharField(max_length=20, default="raised")  # raised or resolved
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    webhook = models.ForeignKey(
        VaultWebhook, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    digest = models.BooleanField(default=False)
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claim = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "user"],
                condition=models.Q(channel="email"),
                name="unique_alert_email_per_user",
            ),
            models.UniqueConstraint(
                fields=["alert", "webhook", "event"],
                condition=models.Q(channel="webhook"),
                name="unique_alert_webhook_event",
            ),
        ]
        indexes = [models.Index(fields=["channel", "digest", "sent_at"])]


class StorageSample(models.Model):
    """A vault's stored bytes on one day (UTC), for the storage-over-time charts."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="storage_samples")
    day = models.DateField()
    bytes = models.PositiveBigIntegerField()
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["day"]
        constraints = [
            models.UniqueConstraint(fields=["vault", "day"], name="unique_storage_sample_per_day")
        ]
        indexes = [models.Index(fields=["tenant", "day"])]
