from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.decorators.http import require_POST

from portal import audit, services
from portal.forms import AccessTokenForm, PreferencesForm
from portal.models import AccessToken, Notification, ResourceGroup, Subscription, UserPreferences
from portal.tenancy import switch_tenant
from portal.views.base import PortalView, form_errors_from
from portal.views.resources import HOME, crumb

# Services the global search offers by name, as the Azure portal does.
SERVICES = [
    (gettext_lazy("Recovery Services vaults"), "vault-list", "vault"),
    (gettext_lazy("Resource groups"), "resource-group-list", "group"),
    (gettext_lazy("Subscriptions"), "subscription-list", "key"),
    (gettext_lazy("Backup center"), "backup-center", "center"),
    (gettext_lazy("All resources"), "all-resources", "grid"),
]


def visible_resources(view, query=None):
    """Subscriptions, resource groups and vaults the user can see, optionally by name."""
    from vaults.models import Vault

    name = {"name__icontains": query} if query else {}
    return {
        "subscriptions": view.scoped(Subscription.objects.filter(**name)),
        "groups": view.scoped(
            ResourceGroup.objects.filter(**name).select_related("subscription", "region")
        ),
        "vaults": view.scoped(
            Vault.objects.filter(**name).select_related("resource_group", "region", "subscription")
        ),
    }


class HomeView(PortalView):
    template_name = "portal/home.html"
    title = gettext_lazy("Home")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["services"] = [(label, reverse(url), icon) for label, url, icon in SERVICES]
        resources = visible_resources(self)
        context["recent_vaults"] = resources["vaults"].order_by("-created_at")[:8]
        context["recent_groups"] = resources["groups"].order_by("-created_at")[:8]
        return context


class AllResourcesView(PortalView):
    template_name = "portal/all_resources.html"
    title = gettext_lazy("All resources")

    def get_breadcrumbs(self):
        return [HOME, crumb(self.title)]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET.get("q", "").strip()[:100]
        resources = visible_resources(self, query)
        rows = [
            {
                "name": g.name,
                "type": g.resource_type,
                "url": reverse("resource-group-detail", args=[g.pk]),
                "location": g.region,
                "group": "",
                "subscription": g.subscription.name,
                "kind": "group",
            }
            for g in resources["groups"]
        ] + [
            {
                "name": v.name,
                "type": v.resource_type,
                "url": reverse("vault-detail", args=[v.pk]),
                "location": v.region,
                "group": v.resource_group.name,
                "subscription": v.subscription.name,
                "kind": "vault",
            }
            for v in resources["vaults"]
        ]
        context["rows"] = sorted(rows, key=lambda r: r["name"].lower())
        context["query"] = query
        return context


class SearchView(PortalView):
    """The top bar's search: services by name, then resources the user can see."""

    template_name = "portal/_search_results.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET.get("q", "").strip()[:100]
        context["query"] = query
        if not query:
            return context
        lowered = query.lower()
        context["services"] = [
            (label, reverse(url), icon)
            for label, url, icon in SERVICES
            if lowered in str(label).lower()
            or any(word.startswith(lowered) for word in str(label).lower().split())
        ]
        resources = visible_resources(self, query)
        context["subscriptions"] = resources["subscriptions"][:5]
        context["groups"] = resources["groups"][:5]
        context["vaults"] = resources["vaults"][:5]
        return context


@require_POST
def switch_directory(request):
    if not request.user.is_authenticated:
        return redirect("login")
    tenant = switch_tenant(request, request.POST.get("tenant"))
    messages.info(request, _("Switched to directory %(name)s.") % {"name": tenant.name})
    return redirect("home")


class PreferencesView(PortalView):
    template_name = "portal/preferences.html"
    title = gettext_lazy("Settings")

    def get_breadcrumbs(self):
        return [HOME, crumb(self.title)]

    def preferences(self):
        return UserPreferences.objects.get_or_create(user=self.request.user)[0]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        prefs = self.preferences()
        context.setdefault(
            "form",
            PreferencesForm(
                initial={
                    "language": prefs.language,
                    "time_zone": prefs.time_zone,
                    "email_alerts": prefs.email_alerts,
                }
            ),
        )
        return context

    def post(self, request, *args, **kwargs):
        form = PreferencesForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        prefs = self.preferences()
        prefs.language = form.cleaned_data["language"]
        prefs.time_zone = form.cleaned_data["time_zone"]
        prefs.email_alerts = form.cleaned_data["email_alerts"] or prefs.email_alerts
        prefs.save()
        translation.activate(prefs.language)
        messages.success(request, _("Your settings were saved."))
        response = redirect(request.POST.get("next") or "preferences")
        response.set_cookie("django_language", prefs.language, samesite="Lax")
        return response


class AccessTokenView(PortalView):
    template_name = "portal/access_tokens.html"
    title = gettext_lazy("Personal access tokens")

    def get_breadcrumbs(self):
        return [HOME, crumb(self.title)]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", AccessTokenForm())
        context["tokens"] = AccessToken.objects.filter(user=self.request.user, tenant=self.tenant)
        context["now"] = timezone.now()
        return context

    def post(self, request, *args, **kwargs):
        if "revoke" in request.POST:
            token = get_object_or_404(
                AccessToken.objects.filter(
                    user=request.user, tenant=self.tenant, revoked_at__isnull=True
                ),
                pk=request.POST["revoke"],
            )
            services.revoke_access_token(request, token)
            messages.success(request, _("Token %(name)s revoked.") % {"name": token.name})
            return redirect("access-tokens")
        form = AccessTokenForm(request.POST)
        if form.is_valid():
            try:
                _token, plain = services.create_access_token(
                    request.user, self.tenant, request=request, **form.cleaned_data
                )
            except ValidationError as exc:
                form_errors_from(exc, form)
            else:
                return self.render_to_response(self.get_context_data(new_token=plain))
        return self.render_to_response(self.get_context_data(form=form), status=400)


class NotificationPanelView(PortalView):
    template_name = "portal/_notifications.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        notifications = Notification.objects.filter(
            user=self.request.user, tenant=self.tenant, dismissed_at__isnull=True
        )
        context["notifications"] = notifications[:50]
        notifications.filter(read_at__isnull=True).update(read_at=timezone.now())
        return context


class DismissNotificationsView(PortalView, View):
    def post(self, request, *args, **kwargs):
        Notification.objects.filter(
            user=request.user, tenant=self.tenant, dismissed_at__isnull=True
        ).update(dismissed_at=timezone.now())
        return redirect(reverse("notifications"))


class RateLimitedLoginView(auth_views.LoginView):
    """Sign-in that slows guessing: a few failures per address and account, then a pause."""

    template_name = "portal/login.html"
    redirect_authenticated_user = True

    def limit_keys(self):
        username = self.request.POST.get("username", "").lower()[:150]
        return [f"login-fail:ip:{audit.client_ip(self.request)}", f"login-fail:user:{username}"]

    def post(self, request, *args, **kwargs):
        from django.conf import settings

        if any(
            cache.get(key, 0) >= settings.LOGIN_ATTEMPTS_PER_15_MINUTES for key in self.limit_keys()
        ):
            form = self.get_form()
            form.errors.clear()
            form.add_error(
                None, _("Too many failed sign-in attempts. Wait 15 minutes and try again.")
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        for key in self.limit_keys():
            cache.add(key, 0, timeout=15 * 60)
            cache.incr(key)
        return super().form_invalid(form)
