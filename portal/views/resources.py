from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal import services
from portal.access import Action, paths_filter, readable_paths
from portal.forms import ActivityFilterForm, ResourceGroupForm, RoleAssignmentForm
from portal.models import AuditEvent, ResourceGroup, RoleAssignment, Subscription
from portal.views.base import PortalView, ResourceBladeView, deny_unless, form_errors_from


def crumb(label, url=None):
    return {"label": label, "url": url}


HOME = crumb(gettext_lazy("Home"), "/")


class SubscriptionListView(PortalView):
    template_name = "portal/subscription_list.html"
    title = gettext_lazy("Subscriptions")

    def get_breadcrumbs(self):
        return [HOME, crumb(self.title)]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["subscriptions"] = self.scoped(Subscription.objects.all()).annotate(
            group_count=Count("resource_groups", distinct=True),
            vault_count=Count("vaults", distinct=True),
        )
        return context


class ResourceGroupListView(PortalView):
    template_name = "portal/resource_group_list.html"
    title = gettext_lazy("Resource groups")

    def get_breadcrumbs(self):
        return [HOME, crumb(self.title)]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["groups"] = self.scoped(
            ResourceGroup.objects.select_related("subscription", "region")
        ).annotate(vault_count=Count("vaults"))
        context["writable_subscriptions"] = self.scoped(Subscription.objects.all(), Action.WRITE)
        return context


class CreateResourceGroupView(PortalView):
    template_name = "portal/resource_group_create.html"
    title = gettext_lazy("Create a resource group")

    def get_breadcrumbs(self):
        return [
            HOME,
            crumb(_("Resource groups"), reverse("resource-group-list")),
            crumb(self.title),
        ]

    def subscriptions(self):
        return self.scoped(Subscription.objects.all(), Action.WRITE)

    def get(self, request, *args, **kwargs):
        return self.render_to_response(self.get_context_data(form=ResourceGroupForm()))

    def post(self, request, *args, **kwargs):
        form = ResourceGroupForm(request.POST)
        subscription = self.subscriptions().filter(pk=request.POST.get("subscription")).first()
        if subscription is None:
            form.add_error(None, _("Choose a subscription where you may create resources."))
        if form.is_valid():
            try:
                group = services.create_resource_group(request, subscription, **form.cleaned_data)
            except ValidationError as exc:
                form_errors_from(exc, form)
            else:
                messages.success(
                    request, _("Resource group %(name)s created.") % {"name": group.name}
                )
                return redirect("resource-group-detail", pk=group.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["subscriptions"] = self.subscriptions()
        return context


class SubscriptionBlade(ResourceBladeView):
    model = Subscription

    def get_menu(self):
        pk = self.resource.pk
        return [
            {
                "label": None,
                "items": [
                    ("overview", _("Overview"), reverse("subscription-detail", args=[pk])),
                    ("activity", _("Activity log"), reverse("subscription-activity", args=[pk])),
                    ("iam", _("Access control (IAM)"), reverse("subscription-iam", args=[pk])),
                ],
            },
            {
                "label": _("Settings"),
                "items": [
                    (
                        "resource_groups",
                        _("Resource groups"),
                        reverse("subscription-groups", args=[pk]),
                    ),
                ],
            },
        ]

    def get_breadcrumbs(self):
        return [
            HOME,
            crumb(_("Subscriptions"), reverse("subscription-list")),
            crumb(self.resource.name, reverse("subscription-detail", args=[self.resource.pk])),
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["groups"] = self.scoped(
            self.resource.resource_groups.select_related("region")
        ).annotate(vault_count=Count("vaults"))
        context["essentials"] = [
            (_("Subscription ID"), self.resource.pk),
            (_("Directory"), self.resource.tenant.name),
            (_("Resource groups"), len(context["groups"])),
            (_("Created"), self.resource.created_at),
        ]
        return context


class SubscriptionGroupsView(SubscriptionBlade):
    menu_entry = "resource_groups"
    template_name = "portal/subscription_groups.html"


class ResourceGroupBlade(ResourceBladeView):
    model = ResourceGroup
    select_related = ("subscription", "region")
    template_name = "portal/resource_group_detail.html"

    def get_menu(self):
        pk = self.resource.pk
        return [
            {
                "label": None,
                "items": [
                    ("overview", _("Overview"), reverse("resource-group-detail", args=[pk])),
                    ("activity", _("Activity log"), reverse("resource-group-activity", args=[pk])),
                    ("iam", _("Access control (IAM)"), reverse("resource-group-iam", args=[pk])),
                ],
            },
        ]

    def get_breadcrumbs(self):
        return [
            HOME,
            crumb(_("Resource groups"), reverse("resource-group-list")),
            crumb(self.resource.name, reverse("resource-group-detail", args=[self.resource.pk])),
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        group = self.resource
        context["essentials"] = [
            (_("Subscription"), group.subscription.name),
            (_("Subscription ID"), group.subscription_id),
            (_("Location"), group.region),
            (_("Created"), group.created_at),
        ]
        from vaults.models import Vault

        context["vaults"] = self.scoped(
            Vault.objects.filter(resource_group=group).select_related("region")
        )
        return context

    def post(self, request, *args, **kwargs):
        if request.POST.get("action") != "delete":
            return redirect(request.path)
        try:
            services.delete_resource_group(request, self.resource)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("resource-group-detail", pk=self.resource.pk)
        messages.success(
            request, _("Resource group %(name)s deleted.") % {"name": self.resource.name}
        )
        return redirect("resource-group-list")


class AccessControlMixin:
    """Access control (IAM) for any resource blade: list, add and remove assignments."""

    menu_entry = "iam"
    template_name = "portal/iam.html"

    def assignments(self):
        sub_id, rg_id, vault_id = self.resource.scope_ids()
        inherited = Q(subscription_id=sub_id, resource_group__isnull=True, vault__isnull=True)
        if rg_id:
            inherited |= Q(resource_group_id=rg_id, vault__isnull=True)
        if vault_id:
            inherited |= Q(vault_id=vault_id)
        return self.scoped(
            RoleAssignment.objects.select_related("user", "subscription", "resource_group", "vault")
        ).filter(inherited)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", RoleAssignmentForm())
        context["assignments"] = self.assignments()
        return context

    def post(self, request, *args, **kwargs):
        deny_unless(self.can(self.resource, Action.MANAGE_ACCESS))
        if "remove" in request.POST:
            assignment = get_object_or_404(self.assignments(), pk=request.POST["remove"])
            try:
                services.remove_role_assignment(request, assignment)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, _("Role assignment removed."))
            return redirect(request.path)
        form = RoleAssignmentForm(request.POST)
        if form.is_valid():
            try:
                services.add_role_assignment(request, self.resource, **form.cleaned_data)
            except ValidationError as exc:
                form_errors_from(exc, form)
            else:
                messages.success(request, _("Role assignment added."))
                return redirect(request.path)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class ActivityLogMixin:
    """Activity log for any resource blade: its audit events and those of what it contains."""

    menu_entry = "activity"
    template_name = "portal/activity_log.html"
    page_size = 50

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = ActivityFilterForm(self.request.GET or None)
        events = (
            AuditEvent.objects.filter(tenant=self.tenant)
            .filter(paths_filter(readable_paths(self.request.user, self.tenant)))
            .filter(paths_filter([self.resource.path]))
        )
        days = 7
        if form.is_valid():
            days = int(form.cleaned_data["days"] or 7)
            if form.cleaned_data["q"]:
                q = form.cleaned_data["q"]
                events = events.filter(
                    Q(action__icontains=q)
                    | Q(actor_label__icontains=q)
                    | Q(resource_name__icontains=q)
                )
            if form.cleaned_data["status"]:
                events = events.filter(status=form.cleaned_data["status"])
        events = events.filter(created_at__gte=timezone.now() - timedelta(days=days))
        context["filter_form"] = form
        context["total"] = events.count()
        context["events"] = events[: self.page_size]
        return context


class SubscriptionIAMView(AccessControlMixin, SubscriptionBlade):
    pass


class SubscriptionActivityView(ActivityLogMixin, SubscriptionBlade):
    pass


class ResourceGroupIAMView(AccessControlMixin, ResourceGroupBlade):
    pass


class ResourceGroupActivityView(ActivityLogMixin, ResourceGroupBlade):
    pass
