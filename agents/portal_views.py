"""Portal pages for protected servers, backup items and backup jobs (inside a vault blade)."""

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Max
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from agents import presentation
from agents.api.views import latest_release
from agents.models import Job, Machine
from portal.access import Action
from portal.views.base import ResourceBladeView, deny_unless
from portal.views.resources import HOME, crumb
from vaults.models import RecoveryPoint
from vaults.views.vaults import VaultBlade

JOB_RANGES = {"1": timedelta(days=1), "7": timedelta(days=7), "30": timedelta(days=30)}


def annotate_machines(machines, now=None):
    latest = latest_release()
    for machine in machines:
        machine.online = presentation.is_online(machine, now)
        machine.outdated = presentation.is_outdated(machine, latest)
    return machines


class ProtectedServersView(VaultBlade):
    menu_entry = "infrastructure"
    menu_title = gettext_lazy("Backup infrastructure")
    template_name = "agents/protected_servers.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        machines = self.scoped(
            Machine.objects.filter(vault=self.resource).select_related("policy", "vault")
        ).annotate(point_count=Count("recovery_points"))
        context["machines"] = annotate_machines(list(machines))
        context["latest_release"] = latest_release()
        return context


class BackupItemsView(VaultBlade):
    menu_entry = "items"
    menu_title = gettext_lazy("Backup items")
    template_name = "agents/backup_items.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        machines = self.scoped(
            Machine.objects.filter(vault=self.resource, policy__isnull=False).select_related(
                "policy", "vault"
            )
        ).annotate(
            newest_point=Max("recovery_points__taken_at"), point_count=Count("recovery_points")
        )
        items = []
        for machine in machines:
            for path in machine.policy.items:
                items.append({"machine": machine, "item": path, "kind": _("File folder")})
            if machine.policy.system_state:
                items.append(
                    {"machine": machine, "item": _("System State"), "kind": _("System State")}
                )
        context["items"] = items
        return context


class BackupJobsView(VaultBlade):
    menu_entry = "jobs"
    menu_title = gettext_lazy("Backup jobs")
    template_name = "agents/job_list.html"
    page_size = 50

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        params = self.request.GET
        jobs = self.scoped(
            Job.objects.filter(vault=self.resource).select_related("machine", "vault")
        )
        time_range = params.get("range", "1")
        jobs = jobs.filter(
            started_at__gte=timezone.now() - JOB_RANGES.get(time_range, JOB_RANGES["1"])
        )
        if params.get("status") in Job.State.values:
            jobs = jobs.filter(state=params["status"])
        if params.get("operation") in Job.Kind.values:
            jobs = jobs.filter(kind=params["operation"])
        if params.get("machine"):
            jobs = jobs.filter(machine__name=params["machine"])
        context.update(
            jobs=jobs[: self.page_size],
            total=jobs.count(),
            states=Job.State.choices,
            kinds=Job.Kind.choices,
            machines=Machine.objects.filter(vault=self.resource).values_list("name", flat=True),
            filters={
                "range": time_range,
                "status": params.get("status", ""),
                "operation": params.get("operation", ""),
                "machine": params.get("machine", ""),
            },
        )
        return context


class JobDetailView(ResourceBladeView):
    model = Job
    select_related = ("machine", "vault", "recovery_point", "vault__resource_group")
    template_name = "agents/job_detail.html"

    def get_menu(self):
        return []

    def get_breadcrumbs(self):
        vault = self.resource.vault
        return [
            HOME,
            crumb(_("Recovery Services vaults"), reverse("vault-list")),
            crumb(vault.name, reverse("vault-detail", args=[vault.pk])),
            crumb(_("Backup jobs"), reverse("vault-jobs", args=[vault.pk])),
            crumb(self.resource.name),
        ]


class MachineBlade(ResourceBladeView):
    model = Machine
    select_related = ("vault", "policy", "vault__resource_group")
    template_name = "agents/machine_detail.html"
    menu_entry = "overview"

    def get_menu(self):
        pk = self.resource.pk
        return [
            {
                "label": None,
                "items": [
                    ("overview", _("Overview"), reverse("machine-detail", args=[pk])),
                    ("recover", _("Recover data"), reverse("machine-recover", args=[pk])),
                    ("throttling", _("Throttling"), reverse("machine-throttling", args=[pk])),
                ],
            }
        ]

    def get_breadcrumbs(self):
        vault = self.resource.vault
        return [
            HOME,
            crumb(_("Recovery Services vaults"), reverse("vault-list")),
            crumb(vault.name, reverse("vault-detail", args=[vault.pk])),
            crumb(_("Backup infrastructure"), reverse("vault-infrastructure", args=[vault.pk])),
            crumb(self.resource.name),
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        machine = annotate_machines([self.resource])[0]
        context["jobs"] = machine.jobs.select_related("machine", "vault")[:10]
        context["points"] = RecoveryPoint.objects.filter(machine=machine).order_by("-taken_at")[:20]
        context["point_count"] = RecoveryPoint.objects.filter(machine=machine).count()
        context["latest_release"] = latest_release()
        from vaults.offline import seed_folder

        context["seed_folder"] = seed_folder(machine)
        context["seed_present"] = (context["seed_folder"] / "config.json").exists()
        return context

    def post(self, request, *args, **kwargs):
        from agents.services.commands import queue_command
        from agents.services.machines import delete_machine

        action = request.POST.get("action")
        machine = self.resource
        try:
            if action == "backup":
                deny_unless(self.can(machine, Action.OPERATE))
                queue_command(request, machine, "backup", {})
                messages.success(
                    request,
                    _(
                        "Backup requested. The agent on %(name)s starts it within seconds if it is online."
                    )
                    % {"name": machine.name},
                )
            elif action == "offline_import":
                from vaults.offline import start_offline_import

                job = start_offline_import(request, machine)
                messages.success(
                    request, _("Importing the offline seed of %(name)s.") % {"name": machine.name}
                )
                return redirect("job-detail", pk=job.pk)
            elif action == "delete":
                delete_machine(request, machine, pin=request.POST.get("pin", ""))
                messages.success(
                    request, _("Server %(name)s was unregistered.") % {"name": machine.name}
                )
                return redirect("vault-infrastructure", pk=machine.vault_id)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("machine-detail", pk=machine.pk)
