from django.contrib import admin

from vaults.models import Vault


@admin.register(Vault)
class VaultAdmin(admin.ModelAdmin):
    """Operators see every tenant's vaults; tenants manage them in the portal."""

    list_display = [
        "name",
        "tenant",
        "subscription",
        "region",
        "state",
        "redundancy",
        "storage_bytes",
    ]
    list_filter = ["tenant", "state", "region"]
    search_fields = ["name"]
    readonly_fields = [
        "tenant",
        "subscription",
        "resource_group",
        "state",
        "state_reason",
        "storage_bytes",
    ]

    def has_add_permission(self, request):
        return False  # created through the wizard or the API, which deploy the storage
