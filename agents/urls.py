from django.urls import path

from agents import views

urlpatterns = [
    path("downloads/backup-agent.whl", views.agent_wheel, name="agent-wheel"),
    path("downloads/<str:filename>", views.agent_wheel, name="agent-wheel-versioned"),
]
