from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import set_language
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from agents.api import tenant as tenant_api
from portal.api import views as api
from portal.views import resources, shell
from vaults.api.views import VaultViewSet
from vaults.api_monitoring import AlertViewSet, VaultWebhookViewSet

router = DefaultRouter()
router.register("regions", api.RegionViewSet, basename="api-region")
router.register("subscriptions", api.SubscriptionViewSet, basename="api-subscription")
router.register("resource-groups", api.ResourceGroupViewSet, basename="api-resource-group")
router.register("role-assignments", api.RoleAssignmentViewSet, basename="api-role-assignment")
router.register("audit-events", api.AuditEventViewSet, basename="api-audit-event")
router.register("vaults", VaultViewSet, basename="api-vault")
router.register("alerts", AlertViewSet, basename="api-alert")
router.register(
    r"vaults/(?P<vault_pk>[0-9a-f-]{36})/webhooks",
    VaultWebhookViewSet,
    basename="api-vault-webhook",
)
router.register("machines", tenant_api.MachineViewSet, basename="api-machine")
router.register("jobs", tenant_api.JobViewSet, basename="api-job")
router.register("commands", tenant_api.CommandViewSet, basename="api-command")

urlpatterns = [
    path("", shell.HomeView.as_view(), name="home"),
    path("login/", shell.RateLimitedLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(template_name="portal/password_change.html"),
        name="password_change",
    ),
    path(
        "account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="portal/password_change_done.html"),
        name="password_change_done",
    ),
    path("account/settings/", shell.PreferencesView.as_view(), name="preferences"),
    path("account/tokens/", shell.AccessTokenView.as_view(), name="access-tokens"),
    path("i18n/setlang/", set_language, name="set_language"),
    path("directory/switch/", shell.switch_directory, name="switch-directory"),
    path("search/", shell.SearchView.as_view(), name="search"),
    path("notifications/", shell.NotificationPanelView.as_view(), name="notifications"),
    path(
        "notifications/dismiss/",
        shell.DismissNotificationsView.as_view(),
        name="notifications-dismiss",
    ),
    path("resources/", shell.AllResourcesView.as_view(), name="all-resources"),
    path("subscriptions/", resources.SubscriptionListView.as_view(), name="subscription-list"),
    path(
        "subscriptions/<uuid:pk>/",
        resources.SubscriptionBlade.as_view(),
        name="subscription-detail",
    ),
    path(
        "subscriptions/<uuid:pk>/resource-groups/",
        resources.SubscriptionGroupsView.as_view(),
        name="subscription-groups",
    ),
    path(
        "subscriptions/<uuid:pk>/iam/",
        resources.SubscriptionIAMView.as_view(),
        name="subscription-iam",
    ),
    path(
        "subscriptions/<uuid:pk>/activity/",
        resources.SubscriptionActivityView.as_view(),
        name="subscription-activity",
    ),
    path("resource-groups/", resources.ResourceGroupListView.as_view(), name="resource-group-list"),
    path(
        "resource-groups/create/",
        resources.CreateResourceGroupView.as_view(),
        name="resource-group-create",
    ),
    path(
        "resource-groups/<uuid:pk>/",
        resources.ResourceGroupBlade.as_view(),
        name="resource-group-detail",
    ),
    path(
        "resource-groups/<uuid:pk>/iam/",
        resources.ResourceGroupIAMView.as_view(),
        name="resource-group-iam",
    ),
    path(
        "resource-groups/<uuid:pk>/activity/",
        resources.ResourceGroupActivityView.as_view(),
        name="resource-group-activity",
    ),
    path("", include("vaults.urls")),
    path("", include("agents.urls")),
    path("", include("policies.urls")),
    path("api/v1/", include(router.urls)),
    path("api/agent/v1/", include("agents.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
