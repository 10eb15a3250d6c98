"""The admin portal for platform operators: tenants, quotas, members, subscriptions."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from portal.models import (
    AuditEvent,
    Membership,
    Region,
    ResourceGroup,
    RoleAssignment,
    Subscription,
    Tenant,
)

admin.site.site_header = _("Backup Portal — platform administration")
admin.site.site_title = _("Backup Portal admin")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "domain", "max_vaults", "max_storage_bytes", "created_at"]
    search_fields = ["name", "domain"]
    inlines = [MembershipInline]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "id", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "id"]


@admin.register(ResourceGroup)
class ResourceGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "subscription", "region", "tenant"]
    list_filter = ["tenant", "region"]
    search_fields = ["name"]


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "subscription", "resource_group", "vault", "tenant"]
    list_filter = ["tenant", "role"]
    autocomplete_fields = ["user"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "tenant",
        "actor_label",
        "action",
        "resource_name",
        "status",
        "ip_address",
    ]
    list_filter = ["tenant", "status"]
    search_fields = ["action", "actor_label", "resource_name"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.register(Region)
