from django.urls import include, path
from rest_framework.routers import SimpleRouter

from policies import api, views

router = SimpleRouter()
router.register("policies", api.PolicyViewSet, basename="api-policy")
router.register("machines", api.MachineSettingsViewSet, basename="api-machine-settings")

urlpatterns = [
    # vault-policies (the list) is routed in vaults/urls.py, with the vault's menu.
    path(
        "vaults/<uuid:pk>/policies/create/",
        views.PolicyCreateView.as_view(),
        name="vault-policy-create",
    ),
    # One resource id per route (pk = the policy), like machines/<pk>/ and jobs/<pk>/.
    path("policies/<uuid:pk>/", views.PolicyDetailView.as_view(), name="policy-detail"),
    path("policies/<uuid:pk>/modify/", views.PolicyModifyView.as_view(), name="policy-modify"),
    path(
        "machines/<uuid:pk>/throttling/",
        views.MachineThrottlingView.as_view(),
        name="machine-throttling",
    ),
    path("api/v1/", include(router.urls)),
]
