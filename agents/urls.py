from django.urls import path

from agents import views

urlpatterns = [
    path("downloads/backup-agent.whl", views.latest_agent_wheel, name="agent-wheel"),
    path("downloads/<str:filename>", views.agent_wheel, name="agent-wheel-file"),
]
