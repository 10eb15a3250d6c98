from django.urls import path

from agents.api import views
from agents.api.wait import wait_for_commands

urlpatterns = [
    path("register/", views.RegisterView.as_view(), name="agent-register"),
    path("config/", views.ConfigView.as_view(), name="agent-config"),
    path("commands/wait/", wait_for_commands, name="agent-commands-wait"),
    path(
        "commands/<uuid:command_id>/ack/", views.CommandAckView.as_view(), name="agent-command-ack"
    ),
    path(
        "commands/<uuid:command_id>/result/",
        views.CommandResultView.as_view(),
        name="agent-command-result",
    ),
    path("jobs/", views.JobsView.as_view(), name="agent-jobs"),
    path(
        "jobs/<uuid:job_id>/progress/", views.JobProgressView.as_view(), name="agent-job-progress"
    ),
    path("jobs/<uuid:job_id>/finish/", views.JobFinishView.as_view(), name="agent-job-finish"),
    path("chunks/lookup/", views.ChunkLookupView.as_view(), name="agent-chunk-lookup"),
    path("chunks/locate/", views.ChunkLocateView.as_view(), name="agent-chunk-locate"),
    path("uploads/", views.UploadsView.as_view(), name="agent-uploads"),
    path("packs/", views.PacksView.as_view(), name="agent-packs"),
    path("downloads/", views.DownloadsView.as_view(), name="agent-downloads"),
    path("recovery-points/", views.RecoveryPointsView.as_view(), name="agent-recovery-points"),
    path(
        "recovery-points/<uuid:point_id>/",
        views.RecoveryPointView.as_view(),
        name="agent-recovery-point",
    ),
    path("keys/", views.KeysView.as_view(), name="agent-keys"),
    path("throttling/", views.ThrottlingView.as_view(), name="agent-throttling"),
    path("machines/", views.MachinesView.as_view(), name="agent-machines"),
]
