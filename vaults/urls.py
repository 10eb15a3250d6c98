from django.urls import path

from vaults.views import vaults

urlpatterns = [
    path("vaults/", vaults.VaultListView.as_view(), name="vault-list"),
    path("vaults/create/", vaults.VaultListView.as_view(), name="vault-create"),
    path("vaults/<uuid:pk>/", vaults.VaultBlade.as_view(), name="vault-detail"),
    path("vaults/<uuid:pk>/iam/", vaults.VaultIAMView.as_view(), name="vault-iam"),
    path("vaults/<uuid:pk>/activity/", vaults.VaultActivityView.as_view(), name="vault-activity"),
    path("backup-center/", vaults.BackupCenterView.as_view(), name="backup-center"),
]
