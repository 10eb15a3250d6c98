import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.models import Tenant
from portal.scope import ScopeFields

VAULT_SCOPE = ScopeFields(
    subscription="vault__subscription", resource_group="vault__resource_group", vault="vault"
)


class VaultScoped:
    """Rows that live inside a vault: scoped and audited like the vault."""

    scope_fields = VAULT_SCOPE

    def scope_ids(self):
        return self.vault.subscription_id, self.vault.resource_group_id, self.vault_id


class Machine(VaultScoped, models.Model):
    """A registered server: it holds a machine token (stored hashed) and reports to the portal."""

    TOKEN_PREFIX = "bpm"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    vault = models.ForeignKey("vaults.Vault", on_delete=models.PROTECT, related_name="machines")
    name = models.CharField(_("host name"), max_length=253)
    os_name = models.CharField(_("operating system"), max_length=200, blank=True)
    agent_version = models.CharField(_("agent version"), max_length=40, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC")
    policy = models.ForeignKey(
        "policies.BackupPolicy",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="machines",
    )
    token_key_id = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    key_blob = models.BinaryField(blank=True, default=b"")  # wrapped data keys; opaque here
    throttle_enabled = models.BooleanField(_("throttling"), default=False)
    work_days = models.JSONField(default=list, blank=True)  # 0=Monday … 6=Sunday
    work_start = models.TimeField(null=True, blank=True)
    work_end = models.TimeField(null=True, blank=True)
    work_hours_kbps = models.PositiveIntegerField(null=True, blank=True)
    off_hours_kbps = models.PositiveIntegerField(null=True, blank=True)
    settings_version = models.PositiveIntegerField(default=1)
    # Other machines of the vault whose keys this machine's agent has unlocked (it reports them).
    unlocked_sources = models.JSONField(default=list, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_backup_at = models.DateTimeField(null=True, blank=True)
    last_backup_state = models.CharField(max_length=30, blank=True)
    next_backup_at = models.DateTimeField(null=True, blank=True, db_index=True)
    storage_bytes = models.PositiveBigIntegerField(default=0)
    registered_at = models.DateTimeField(auto_now_add=True)

    resource_type = _("Protected server")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                models.functions.Lower("name"), "vault", name="unique_machine_name_in_vault"
            )
        ]

    def __str__(self):
        return self.name

    @property
    def path(self):
        return f"{self.vault.path}/machines/{self.id}"


class AgentCommand(models.Model):
    """Work the portal asks an agent to do; delivered on the agent's next (long) poll."""

    class Kind(models.TextChoices):
        BACKUP = "backup", _("Back up now")
        RESTORE = "restore", _("Restore")
        BROWSE = "browse", _("Browse a recovery point")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="commands")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    payload = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default="pending")
    result = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    scope_fields = ScopeFields(
        subscription="machine__vault__subscription",
        resource_group="machine__vault__resource_group",
        vault="machine__vault",
        tenant="machine__tenant",
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["machine", "state"])]

    @property
    def tenant_id(self):
        return self.machine.tenant_id

    def scope_ids(self):
        return self.machine.scope_ids()


class Job(VaultScoped, models.Model):
    """One backup, restore or offline import: the record of what happened, with progress."""

    class Kind(models.TextChoices):
        BACKUP = "backup", _("Backup")
        RESTORE = "restore", _("Restore")
        OFFLINE_IMPORT = "offline_import", _("Offline import")

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        ADHOC = "adhoc", _("Ad hoc")
        PORTAL = "portal", _("Started from the portal")

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In progress")
        COMPLETED = "completed", _("Completed")
        WARNINGS = "completed_with_warnings", _("Completed with warnings")
        FAILED = "failed", _("Failed")

    FINAL_STATES = ("completed", "completed_with_warnings", "failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    vault = models.ForeignKey("vaults.Vault", on_delete=models.CASCADE, related_name="jobs")
    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="jobs")
    command = models.ForeignKey(AgentCommand, on_delete=models.SET_NULL, null=True, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    state = models.CharField(max_length=30, choices=State.choices, default="in_progress")
    phase = models.CharField(max_length=30, blank=True)
    files_done = models.PositiveBigIntegerField(default=0)
    files_total = models.PositiveBigIntegerField(null=True, blank=True)
    bytes_scanned = models.PositiveBigIntegerField(default=0)
    bytes_total = models.PositiveBigIntegerField(null=True, blank=True)
    bytes_new = models.PositiveBigIntegerField(default=0)
    bytes_uploaded = models.PositiveBigIntegerField(default=0)
    rate_bps = models.PositiveBigIntegerField(default=0)
    eta_seconds = models.PositiveIntegerField(null=True, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    warning_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    retain_until = models.DateTimeField(null=True, blank=True)
    recovery_point = models.ForeignKey(
        "vaults.RecoveryPoint", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The watchdog fails an in-progress job whose agent stops reporting past this instant.
    report_deadline = models.DateTimeField(null=True, blank=True, db_index=True)

    resource_type = _("Backup job")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["vault", "-started_at"])]

    @property
    def name(self):
        return f"{self.get_kind_display()} {self.machine.name}"

    @property
    def path(self):
        return f"{self.vault.path}/jobs/{self.id}"

    @property
    def percent(self):
        if self.state in self.FINAL_STATES and self.state != "failed":
            return 100
        if self.bytes_total:
            return min(99, int(100 * self.bytes_scanned / self.bytes_total))
        return None


class AgentRelease(models.Model):
    """The agent versions the platform offers; the newest flags older agents."""

    version = models.CharField(max_length=40, unique=True)
    released_at = models.DateTimeField(auto_now_add=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-released_at"]
