from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.access import Action
from portal.views.base import PortalView, ResourceBladeView, deny_unless
from portal.views.resources import HOME, AccessControlMixin, ActivityLogMixin, crumb
from vaults import services
from vaults.alerts import active_counts
from vaults.forms import RedundancyForm, SecurityForm
from vaults.models import Alert, Vault


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


def vault_menu(vault):
    def entry(key, label, name):
        return (key, label, reverse(name, args=[vault.pk]))

    return [
        {
            "label": None,
            "items": [
                entry("overview", _("Overview"), "vault-detail"),
                entry("activity", _("Activity log"), "vault-activity"),
                entry("iam", _("Access control (IAM)"), "vault-iam"),
            ],
        },
        {
            "label": _("Getting started"),
            "items": [entry("backup", _("Backup"), "vault-getting-started")],
        },
        {
            "label": _("Protected items"),
            "items": [entry("items", _("Backup items"), "vault-backup-items")],
        },
        {
            "label": _("Manage"),
            "items": [
                entry("policies", _("Backup policies"), "vault-policies"),
                entry("infrastructure", _("Backup infrastructure"), "vault-infrastructure"),
            ],
        },
        {
            "label": _("Monitoring"),
            "items": [
                entry("alerts", _("Backup alerts"), "vault-alerts"),
                entry("jobs", _("Backup jobs"), "vault-jobs"),
                entry("usage", _("Usage"), "vault-usage"),
            ],
        },
        {
            "label": _("Settings"),
            "items": [entry("properties", _("Properties"), "vault-properties")],
        },
    ]


class VaultBlade(ResourceBladeView):
    model = Vault
    select_related = ("resource_group", "subscription", "region")
    template_name = "vaults/vault_overview.html"
    menu_title = None

    def get(self, request, *args, **kwargs):
        if self.resource.state != "succeeded":
            return redirect("vault-deployment", pk=self.resource.pk)
        return super().get(request, *args, **kwargs)

    def get_menu(self):
        return vault_menu(self.resource)

    def get_breadcrumbs(self):
        crumbs = [
            HOME,
            crumb(_("Recovery Services vaults"), reverse("vault-list")),
            crumb(self.resource.name, reverse("vault-detail", args=[self.resource.pk])),
        ]
        if self.menu_title:
            crumbs.append(crumb(self.menu_title))
        return crumbs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["menu_title"] = self.menu_title
        return context


def vault_overview_counts(vault) -> dict:
    """Tiles of the vault overview: servers, items, jobs of the last 24 hours by state."""
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone

    from agents.models import Job, Machine

    machines = list(Machine.objects.filter(vault=vault).select_related("policy"))
    items = sum(len(m.policy.items) + int(m.policy.system_state) for m in machines if m.policy)
    since = timezone.now() - timedelta(hours=24)
    by_state = dict(
        Job.objects.filter(vault=vault, started_at__gte=since)
        .values_list("state")
        .annotate(n=Count("id"))
    )
    recent = Job.objects.filter(vault=vault).select_related("machine", "vault")[:5]
    return {
        "machine_count": len(machines),
        "item_count": items,
        "jobs_24h": by_state,
        "recent_jobs": recent,
    }


class VaultOverviewView(VaultBlade):
    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        vault = self.resource
        context["essentials"] = [
            (_("Resource group"), vault.resource_group.name),
            (_("Storage replication"), vault.get_redundancy_display()),
            (_("Location"), vault.region),
            (
                _("Soft delete"),
                _("Enabled (%(days)s days)") % {"days": vault.soft_delete_days}
                if vault.soft_delete_enabled
                else _("Disabled"),
            ),
            (_("Subscription"), vault.subscription.name),
            (_("Immutability"), vault.get_immutability_display()),
            (_("Subscription ID"), vault.subscription_id),
            (_("Vault ID"), vault.pk),
        ]
        context["deletion_blockers"] = services.deletion_blockers(vault)
        context["alert_counts"] = active_counts(self.scoped(Alert.objects.filter(vault=vault)))
        context.update(vault_overview_counts(vault))
        return context

    def post(self, request, *args, **kwargs):
        if request.POST.get("action") == "delete":
            try:
                services.delete_vault(request, self.resource)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
                return redirect("vault-detail", pk=self.resource.pk)
            messages.success(request, _("Deleting vault %(name)s.") % {"name": self.resource.name})
            return redirect("vault-list")
        return redirect("vault-detail", pk=self.resource.pk)


class VaultIAMView(AccessControlMixin, VaultBlade):
    menu_title = gettext_lazy("Access control (IAM)")


class VaultActivityView(ActivityLogMixin, VaultBlade):
    menu_title = gettext_lazy("Activity log")


class VaultPropertiesView(VaultBlade):
    menu_entry = "properties"
    menu_title = gettext_lazy("Properties")
    template_name = "vaults/properties.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        vault = self.resource
        context.setdefault(
            "redundancy_form", RedundancyForm(initial={"redundancy": vault.redundancy})
        )
        context.setdefault(
            "security_form",
            SecurityForm(
                initial={
                    "soft_delete_enabled": vault.soft_delete_enabled,
                    "soft_delete_days": vault.soft_delete_days,
                    "immutability": vault.immutability,
                }
            ),
        )
        context["redundancy_locked"] = services.has_backup_data(vault)
        context["editing_redundancy"] = self.request.GET.get("edit") == "redundancy"
        return context

    def post(self, request, *args, **kwargs):
        vault = self.resource
        section = request.POST.get("section")
        try:
            if section == "redundancy":
                form = RedundancyForm(request.POST)
                if not form.is_valid():
                    return self.render_to_response(
                        self.get_context_data(redundancy_form=form), status=400
                    )
                services.update_redundancy(request, vault, form.cleaned_data["redundancy"])
                messages.success(request, _("Backup configuration saved."))
            elif section == "security":
                form = SecurityForm(request.POST)
                if not form.is_valid():
                    return self.render_to_response(
                        self.get_context_data(security_form=form), status=400
                    )
                services.update_security(request, vault, **form.cleaned_data)
                messages.success(request, _("Security settings saved."))
            elif section == "pin":
                pin = services.generate_security_pin(request, vault)
                return self.render_to_response(self.get_context_data(new_pin=pin))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("vault-properties", pk=vault.pk)


class VaultGettingStartedView(VaultBlade):
    menu_entry = "backup"
    menu_title = gettext_lazy("Backup")
    template_name = "vaults/getting_started.html"

    def get_context_data(self, **kwargs):
        from agents.wheel import agent_version, wheel_filename

        context = super().get_context_data(**kwargs)
        context["workload"] = self.request.GET.get("workload", "onprem")
        goals = self.request.GET.getlist("goal") or ["files"]
        context["goals"] = goals
        context["prepared"] = "prepare" in self.request.GET
        context["agent_version"] = agent_version()
        context["wheel_filename"] = wheel_filename()
        context["portal_url"] = self.request.build_absolute_uri("/").rstrip("/")
        return context


class VaultCredentialsView(VaultBlade):
    """POST: download a new vault credentials file (audited)."""

    def get(self, request, *args, **kwargs):
        return redirect("vault-getting-started", pk=self.resource.pk)

    def post(self, request, *args, **kwargs):
        deny_unless(self.can(self.resource, Action.OPERATE))
        try:
            filename, body = services.issue_credentials(request, self.resource)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("vault-getting-started", pk=self.resource.pk)
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class VaultEmptyStateView(VaultBlade):
    """Menu entries whose content arrives with later features: an honest empty state."""

    template_name = "vaults/empty_state.html"
    empty_message = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["empty_message"] = self.empty_message
        return context


def empty_state(entry, title, message):
    return VaultEmptyStateView.as_view(menu_entry=entry, menu_title=title, empty_message=message)


class VaultUsageView(VaultBlade):
    """Usage: what the vault stores, by server, with the 30-day trend."""

    menu_entry = "usage"
    menu_title = gettext_lazy("Usage")
    template_name = "vaults/usage.html"

    def get_context_data(self, **kwargs):
        from django.db.models import Count, Sum
        from django.utils import timezone

        from agents.models import Machine
        from vaults.views.monitoring import storage_chart

        context = super().get_context_data(**kwargs)
        vault = self.resource
        tenant = vault.tenant
        context["machines"] = Machine.objects.filter(vault=vault).annotate(
            point_count=Count("recovery_points")
        )
        context["storage_chart"] = storage_chart([vault.pk], vault.storage_bytes, timezone.now())
        used = (
            Vault.objects.filter(tenant=tenant).aggregate(total=Sum("storage_bytes"))["total"] or 0
        )
        context["quota"] = {
            "used": used,
            "limit": tenant.max_storage_bytes,
            "percent": min(100, round(100 * used / tenant.max_storage_bytes))
            if tenant.max_storage_bytes
            else 0,
        }
        return context
