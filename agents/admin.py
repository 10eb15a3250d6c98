from django.contrib import admin

from agents.models import AgentRelease, Job, Machine


@admin.register(AgentRelease)
class AgentReleaseAdmin(admin.ModelAdmin):
    """The catalogue of agent versions; the newest flags older agents in every vault."""

    list_display = ["version", "released_at"]


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    list_display = ["name", "vault", "tenant", "agent_version", "last_seen_at", "storage_bytes"]
    list_filter = ["tenant"]
    search_fields = ["name"]
    readonly_fields = [f.name for f in Machine._meta.fields]

    def has_add_permission(self, request):
        return False  # machines register themselves with a credentials file


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["started_at", "machine", "kind", "trigger", "state", "tenant"]
    list_filter = ["state", "kind", "tenant"]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False
