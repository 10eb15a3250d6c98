import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.scope import ScopeFields

resource_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._()-]{0,88}[A-Za-z0-9_()-]?$",
    _("Use letters, digits, periods, underscores, hyphens and parentheses; 1 to 90 characters."),
)


class Region(models.Model):
    code = models.SlugField(max_length=40, primary_key=True)
    name = models.CharField(max_length=80)
    geography = models.CharField(max_length=40)

    class Meta:
        ordering = ["geography", "name"]

    def __str__(self):
        from django.utils.translation import gettext

        return gettext(self.name)


class Tenant(models.Model):
    """A directory: the unit of isolation. Every tenant-owned row points at one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=100)
    domain = models.SlugField(_("domain"), max_length=63, unique=True)
    max_vaults = models.PositiveIntegerField(_("vault quota"), default=50)
    max_storage_bytes = models.PositiveBigIntegerField(
        _("storage quota (bytes)"), default=10 * 1024**4
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="unique_membership")]


class Subscription(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="subscriptions")
    name = models.CharField(_("name"), max_length=64, validators=[resource_name_validator])
    created_at = models.DateTimeField(auto_now_add=True)

    resource_type = _("Subscription")
    scope_fields = ScopeFields(subscription="id")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def path(self):
        return f"/subscriptions/{self.id}"

    def scope_ids(self):
        return self.id, None, None


class ResourceGroup(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="resource_groups"
    )
    name = models.CharField(_("name"), max_length=90, validators=[resource_name_validator])
    region = models.ForeignKey(Region, on_delete=models.PROTECT, verbose_name=_("region"))
    created_at = models.DateTimeField(auto_now_add=True)

    resource_type = _("Resource group")
    scope_fields = ScopeFields(subscription="subscription", resource_group="id")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                models.functions.Lower("name"), "subscription", name="unique_rg_name_in_sub"
            )
        ]

    def __str__(self):
        return self.name

    @property
    def path(self):
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.id}"

    def scope_ids(self):
        return self.subscription_id, self.id, None


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    CONTRIBUTOR = "contributor", _("Contributor")
    BACKUP_OPERATOR = "backup_operator", _("Backup Operator")
    READER = "reader", _("Reader")


class RoleAssignment(models.Model):
    """A role at subscription, resource-group or vault scope, inherited downward.

    The scope is the most specific of the three references that is set.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_assignments"
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="role_assignments"
    )
    resource_group = models.ForeignKey(
        ResourceGroup, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    vault = models.ForeignKey(
        "vaults.Vault", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    scope_fields = ScopeFields(
        subscription="subscription", resource_group="resource_group", vault="vault"
    )

    class Meta:
        ordering = ["user__email", "role"]
        # One constraint per scope level: NULLs are distinct in a plain unique constraint.
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role", "subscription"],
                condition=models.Q(resource_group__isnull=True, vault__isnull=True),
                name="unique_role_at_subscription",
            ),
            models.UniqueConstraint(
                fields=["user", "role", "resource_group"],
                condition=models.Q(vault__isnull=True),
                name="unique_role_at_resource_group",
            ),
            models.UniqueConstraint(fields=["user", "role", "vault"], name="unique_role_at_vault"),
        ]

    @property
    def scope(self):
        return self.vault or self.resource_group or self.subscription

    def scope_ids(self):
        return self.subscription_id, self.resource_group_id, self.vault_id


class AuditEvent(models.Model):
    """Who did what to which resource, when, from where. Written, never updated."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=80)
    resource_type = models.CharField(max_length=40)
    resource_name = models.CharField(max_length=200)
    resource_path = models.CharField(max_length=400, db_index=True)
    status = models.CharField(max_length=20, default="succeeded")
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]


class AccessToken(models.Model):
    """A personal access token for the tenant API: ``bpp_<key id>_<secret>``, stored hashed."""

    PREFIX = "bpp"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens"
    )
    name = models.CharField(_("name"), max_length=100)
    key_id = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField(_("expires"))
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class UserPreferences(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, default="en")
    time_zone = models.CharField(max_length=64, default="UTC")
    email_alerts = models.CharField(
        _("alert e-mails"),
        max_length=8,
        choices=[
            ("each", _("One e-mail per alert")),
            ("digest", _("An hourly digest")),
            ("off", _("No e-mail")),
        ],
        default="each",
    )


class Notification(models.Model):
    """A message for one user's bell. Stored, so a closed browser misses nothing.

    ``key`` lets a producer update one notification in place, as a deployment moves from
    "in progress" to "succeeded".
    """

    class Level(models.TextChoices):
        INFO = "info", _("Information")
        PROGRESS = "progress", _("In progress")
        SUCCESS = "success", _("Succeeded")
        WARNING = "warning", _("Warning")
        ERROR = "error", _("Failed")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    key = models.CharField(max_length=120, blank=True)
    level = models.CharField(max_length=10, choices=Level.choices, default="info")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=400, blank=True)
    link_label = models.CharField(max_length=100, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["user", "tenant", "dismissed_at", "-updated_at"])]


class EventOutbox(models.Model):
    """Live events written by processes without a route to the browsers' channel layer.

    In the embedded default the channel layer lives in the web process's memory, so the
    worker stores its events here and the web process relays them. Rows are short-lived.
    """

    groups = models.JSONField()
    kind = models.CharField(max_length=40)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
