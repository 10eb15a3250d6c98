from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.views.generic import TemplateView

from portal.access import Action, can, scoped


class PortalView(LoginRequiredMixin, TemplateView):
    """Base of every signed-in page: the tenant scoping is applied here, not per view."""

    title = ""

    @property
    def tenant(self):
        return self.request.tenant

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and request.tenant is None:
            raise Http404(_("You are not a member of any directory."))
        return super().dispatch(request, *args, **kwargs)

    def scoped(self, queryset, action=Action.READ):
        return scoped(queryset, self.request.user, self.tenant, action)

    def can(self, obj, action):
        return can(self.request.user, self.tenant, obj, action)

    def get_breadcrumbs(self):
        return []

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["breadcrumbs"] = self.get_breadcrumbs()
        context["title"] = self.title
        return context


class ResourceBladeView(PortalView):
    """A blade about one resource, with the resource's menu at its left."""

    model = None
    select_related = ()
    menu_entry = "overview"
    template_name = "portal/resource_overview.html"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and request.tenant is not None:
            self.resource = self.get_resource()
        return super().dispatch(request, *args, **kwargs)

    def get_resource(self):
        queryset = self.model.objects.select_related(*self.select_related)
        return get_object_or_404(self.scoped(queryset), pk=self.kwargs["pk"])

    def get_menu(self):
        return []

    def get_breadcrumbs(self):
        return []

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        resource = self.resource
        context.update(
            resource=resource,
            menu=self.get_menu(),
            menu_entry=self.menu_entry,
            can_read=True,
            can_operate=self.can(resource, Action.OPERATE),
            can_write=self.can(resource, Action.WRITE),
            can_manage_access=self.can(resource, Action.MANAGE_ACCESS),
        )
        return context


def form_errors_from(exc: ValidationError, form):
    """Put a service function's ValidationError on a Django form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def deny_unless(allowed: bool):
    if not allowed:
        raise PermissionDenied
