from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.views.base import PortalView, ResourceBladeView
from portal.views.resources import HOME, AccessControlMixin, ActivityLogMixin, crumb
from vaults.models import Vault


class VaultListView(PortalView):
    template_name = "vaults/vault_list.html"
    title = gettext_lazy("Recovery Services vaults")

    def get_breadcrumbs(self):
        return [HOME, crumb(self.title)]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        vaults = self.scoped(
            Vault.objects.select_related("resource_group", "subscription", "region")
        )
        query = self.request.GET.get("q", "").strip()[:100]
        if query:
            vaults = vaults.filter(
                Q(name__icontains=query) | Q(resource_group__name__icontains=query)
            )
        context["vaults"] = vaults
        context["query"] = query
        return context


class VaultBlade(ResourceBladeView):
    model = Vault
    select_related = ("resource_group", "subscription", "region")
    template_name = "vaults/vault_overview.html"

    def get_menu(self):
        pk = self.resource.pk

        def entry(key, label, name):
            return (key, label, reverse(name, args=[pk]))

        return [
            {
                "label": None,
                "items": [
                    entry("overview", _("Overview"), "vault-detail"),
                    entry("activity", _("Activity log"), "vault-activity"),
                    entry("iam", _("Access control (IAM)"), "vault-iam"),
                ],
            },
        ]

    def get_breadcrumbs(self):
        return [
            HOME,
            crumb(_("Recovery Services vaults"), reverse("vault-list")),
            crumb(self.resource.name, reverse("vault-detail", args=[self.resource.pk])),
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        vault = self.resource
        context["essentials"] = [
            (_("Resource group"), vault.resource_group.name),
            (_("Location"), vault.region.name),
            (_("Subscription"), vault.subscription.name),
            (_("Subscription ID"), vault.subscription_id),
            (_("Storage replication"), vault.get_redundancy_display()),
            (
                _("Soft delete"),
                _("Enabled (%(days)s days)") % {"days": vault.soft_delete_days}
                if vault.soft_delete_enabled
                else _("Disabled"),
            ),
            (_("Immutability"), vault.get_immutability_display()),
            (_("Vault ID"), vault.pk),
        ]
        return context


class VaultIAMView(AccessControlMixin, VaultBlade):
    pass


class VaultActivityView(ActivityLogMixin, VaultBlade):
    pass


class BackupCenterView(PortalView):
    template_name = "vaults/backup_center.html"
    title = gettext_lazy("Backup center")

    def get_breadcrumbs(self):
        return [HOME, crumb(self.title)]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["vault_count"] = self.scoped(Vault.objects.all()).count()
        return context
