from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.access import Action
from portal.models import ResourceGroup, Subscription
from portal.views.base import PortalView, form_errors_from
from portal.views.resources import HOME, crumb
from vaults import services
from vaults.forms import VaultBasicsForm
from vaults.models import Vault


class CreateVaultView(PortalView):
    """The Create Recovery Services vault wizard: Basics → Review + create → Create."""

    template_name = "vaults/create.html"
    title = gettext_lazy("Create Recovery Services vault")

    def get_breadcrumbs(self):
        return [
            HOME,
            crumb(_("Recovery Services vaults"), reverse("vault-list")),
            crumb(self.title),
        ]

    def subscriptions(self):
        return self.scoped(Subscription.objects.all(), Action.READ)

    def groups(self):
        return self.scoped(ResourceGroup.objects.select_related("subscription"), Action.WRITE)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["groups"] = self.groups()
        return context

    def make_form(self, data=None):
        initial = {}
        group = self.groups().filter(pk=self.request.GET.get("resource_group") or None).first()
        if group:
            initial = {
                "subscription": str(group.subscription_id),
                "resource_group": str(group.pk),
                "region": group.region_id,
            }
        return VaultBasicsForm(
            data, initial=initial, subscriptions=self.subscriptions(), groups=self.groups()
        )

    def get(self, request, *args, **kwargs):
        return self.render_to_response(self.get_context_data(form=self.make_form(), step="basics"))

    def post(self, request, *args, **kwargs):
        form = self.make_form(request.POST)
        step = request.POST.get("step", "review")
        if not form.is_valid():
            return self.render_to_response(
                self.get_context_data(form=form, step="review", failed=True), status=400
            )
        data = form.cleaned_data
        subscription = self.subscriptions().get(pk=data["subscription"])
        group = (
            self.groups()
            .filter(pk=data["resource_group"] or None, subscription=subscription)
            .first()
        )
        if data["resource_group"] and group is None:
            form.add_error("resource_group", _("Choose a resource group of this subscription."))
        if not group and not data["new_resource_group"]:
            form.add_error("new_resource_group", _("Name the new resource group."))
        for error in services.vault_name_errors(data["name"], subscription):
            form.add_error("name", error)
        if form.errors or step != "create":
            context = self.get_context_data(
                form=form,
                step="review",
                failed=bool(form.errors),
                subscription=subscription,
                group=group,
            )
            return self.render_to_response(context, status=400 if form.errors else 200)
        try:
            vault = services.create_vault(
                request,
                subscription=subscription,
                name=data["name"],
                region=data["region"],
                resource_group=group,
                new_resource_group=data["new_resource_group"],
            )
        except ValidationError as exc:
            form_errors_from(exc, form)
            return self.render_to_response(
                self.get_context_data(form=form, step="review", failed=True), status=400
            )
        return redirect("vault-deployment", pk=vault.pk)


class ValidateVaultNameView(PortalView):
    """Inline validation while typing: the same rules and messages as on submit and in the API."""

    def get(self, request, *args, **kwargs):
        name = request.GET.get("name", "")[:200]
        subscription = (
            self.scoped(Subscription.objects.all())
            .filter(pk=request.GET.get("subscription") or None)
            .first()
        )
        errors = services.vault_name_errors(name, subscription) if name else []
        html = render_to_string(
            "vaults/_name_errors.html", {"errors": errors, "name": name}, request
        )
        return HttpResponse(html)


class DeploymentView(PortalView):
    template_name = "vaults/deployment.html"
    title = gettext_lazy("Deployment")

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and request.tenant is not None:
            self.vault = get_object_or_404(self.scoped(Vault.objects.all()), pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_template_names(self):
        if self.request.GET.get("fragment"):
            return ["vaults/_deployment_status.html"]
        return [self.template_name]

    def get_breadcrumbs(self):
        return [
            HOME,
            crumb(_("Recovery Services vaults"), reverse("vault-list")),
            crumb(self.vault.name),
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["vault"] = self.vault
        context["can_write"] = self.can(self.vault, Action.WRITE)
        return context

    def post(self, request, *args, **kwargs):
        try:
            if request.POST.get("action") == "retry":
                services.retry_deployment(request, self.vault)
            elif request.POST.get("action") == "delete":
                services.delete_vault(request, self.vault)
                return redirect("vault-list")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("vault-deployment", pk=self.vault.pk)
