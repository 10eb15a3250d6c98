"""Recover data from the portal: choose a point, browse it through the agent, restore."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from agents.models import AgentCommand, Machine
from agents.portal_views import MachineBlade, annotate_machines
from agents.services import restore
from portal.access import Action
from portal.views.base import PortalView
from vaults.models import RecoveryPoint
from vaults.retention_view import point_verdicts


class RecoverDataView(MachineBlade):
    menu_entry = "recover"
    template_name = "agents/recover.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        machine = self.resource
        points = list(RecoveryPoint.objects.filter(machine=machine).order_by("-taken_at")[:500])
        verdicts = point_verdicts(machine, points)
        for point in points:
            point.verdict = verdicts.get(str(point.pk))
        chosen = next((p for p in points if str(p.pk) == self.request.GET.get("point")), None)
        context.update(
            points=points,
            point=chosen,
            path=self.request.GET.get("path", ""),
            targets=annotate_machines(restore.restore_targets(machine)),
            command=self.scoped(AgentCommand.objects.select_related("machine"))
            .filter(pk=self.request.GET.get("browse") or None, machine=machine)
            .first()
            if self.request.GET.get("browse")
            else None,
        )
        return context

    def post(self, request, *args, **kwargs):
        machine = self.resource
        point = get_object_or_404(
            RecoveryPoint.objects.filter(machine=machine), pk=request.POST.get("point")
        )
        try:
            if request.POST.get("action") == "browse":
                path = request.POST.get("path", "")
                command = restore.request_browse(request, machine, point, path)
                query = f"?point={point.pk}&path={path}&browse={command.pk}"
                return redirect(reverse("machine-recover", args=[machine.pk]) + query)
            target = get_object_or_404(
                self.scoped(Machine.objects.select_related("vault"), Action.OPERATE),
                pk=request.POST.get("target_machine"),
            )
            restore.request_restore(
                request,
                source=machine,
                point=point,
                target=target,
                paths=request.POST.getlist("paths"),
                target_dir=request.POST.get("target_dir", ""),
                on_conflict=request.POST.get("on_conflict", "copy"),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(reverse("machine-recover", args=[machine.pk]) + f"?point={point.pk}")
        messages.success(
            request,
            _("Restore requested. %(name)s's agent starts it within seconds; follow it below.")
            % {"name": target.name},
        )
        return redirect(
            reverse("vault-jobs", args=[machine.vault_id])
            + f"?operation=restore&machine={target.name}"
        )


class BrowseResultView(PortalView):
    """The folder listing the agent returned, polled by the Recover data page."""

    template_name = "agents/_browse_result.html"
    title = gettext_lazy("Browse")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        command = get_object_or_404(
            self.scoped(AgentCommand.objects.select_related("machine", "machine__vault")),
            pk=kwargs["pk"],
            kind=AgentCommand.Kind.BROWSE,
        )
        path = command.payload.get("path", "")
        context.update(
            command=command,
            entries=restore.browse_result(command),
            path=path,
            parent=path.rsplit("/", 1)[0] if "/" in path else "",
            point_id=command.payload.get("point_id"),
        )
        return context
