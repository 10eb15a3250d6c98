from django.urls import path

from agents import portal_views as agent_views
from agents import restore_views
from policies.views import PolicyListView
from vaults.views import create, monitoring, vaults

urlpatterns = [
    path("vaults/", vaults.VaultListView.as_view(), name="vault-list"),
    path("vaults/create/", create.CreateVaultView.as_view(), name="vault-create"),
    path(
        "vaults/validate-name/", create.ValidateVaultNameView.as_view(), name="vault-validate-name"
    ),
    path("vaults/<uuid:pk>/", vaults.VaultOverviewView.as_view(), name="vault-detail"),
    path("vaults/<uuid:pk>/deployment/", create.DeploymentView.as_view(), name="vault-deployment"),
    path("vaults/<uuid:pk>/iam/", vaults.VaultIAMView.as_view(), name="vault-iam"),
    path("vaults/<uuid:pk>/activity/", vaults.VaultActivityView.as_view(), name="vault-activity"),
    path(
        "vaults/<uuid:pk>/properties/",
        vaults.VaultPropertiesView.as_view(),
        name="vault-properties",
    ),
    path(
        "vaults/<uuid:pk>/getting-started/",
        vaults.VaultGettingStartedView.as_view(),
        name="vault-getting-started",
    ),
    path(
        "vaults/<uuid:pk>/credentials/",
        vaults.VaultCredentialsView.as_view(),
        name="vault-credentials",
    ),
    path(
        "vaults/<uuid:pk>/backup-items/",
        agent_views.BackupItemsView.as_view(),
        name="vault-backup-items",
    ),
    path("vaults/<uuid:pk>/policies/", PolicyListView.as_view(), name="vault-policies"),
    path(
        "vaults/<uuid:pk>/infrastructure/",
        agent_views.ProtectedServersView.as_view(),
        name="vault-infrastructure",
    ),
    path("vaults/<uuid:pk>/alerts/", monitoring.VaultAlertsView.as_view(), name="vault-alerts"),
    path("vaults/<uuid:pk>/jobs/", agent_views.BackupJobsView.as_view(), name="vault-jobs"),
    path("vaults/<uuid:pk>/usage/", vaults.VaultUsageView.as_view(), name="vault-usage"),
    path("machines/<uuid:pk>/", agent_views.MachineBlade.as_view(), name="machine-detail"),
    path(
        "machines/<uuid:pk>/recover/",
        restore_views.RecoverDataView.as_view(),
        name="machine-recover",
    ),
    path(
        "commands/<uuid:pk>/browse/",
        restore_views.BrowseResultView.as_view(),
        name="command-browse",
    ),
    path("jobs/<uuid:pk>/", agent_views.JobDetailView.as_view(), name="job-detail"),
    path("backup-center/", monitoring.BackupCenterView.as_view(), name="backup-center"),
    path("blob/", ("vaults.views.blob", None, None)),  # = include(): signed local blob URLs
]
