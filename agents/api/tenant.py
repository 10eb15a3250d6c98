"""Tenant API for servers, jobs, recovery points, backups and restores (/api/v1/)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from agents import presentation
from agents.api.views import latest_release
from agents.models import AgentCommand, Job, Machine
from agents.services import restore
from agents.services.commands import queue_command
from portal.access import Action
from portal.api.base import ScopedViewSetMixin
from portal.services import require
from vaults.models import RecoveryPoint
from vaults.retention_view import point_verdicts


class MachineSerializer(serializers.ModelSerializer):
    online = serializers.SerializerMethodField()
    outdated = serializers.SerializerMethodField()

    class Meta:
        model = Machine
        fields = [
            "id",
            "name",
            "vault",
            "os_name",
            "agent_version",
            "time_zone",
            "policy",
            "online",
            "outdated",
            "last_seen_at",
            "last_backup_at",
            "last_backup_state",
            "storage_bytes",
            "registered_at",
            "unlocked_sources",
        ]
        read_only_fields = fields

    def get_online(self, machine) -> bool:
        return presentation.is_online(machine)

    def get_outdated(self, machine) -> bool:
        return presentation.is_outdated(machine, self.context["latest_release"])


class JobSerializer(serializers.ModelSerializer):
    machine = serializers.CharField(source="machine.name")
    percent = serializers.IntegerField(allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "vault",
            "machine",
            "kind",
            "trigger",
            "state",
            "phase",
            "percent",
            "files_done",
            "bytes_scanned",
            "bytes_total",
            "bytes_new",
            "bytes_uploaded",
            "rate_bps",
            "eta_seconds",
            "warning_count",
            "warnings",
            "error",
            "started_at",
            "finished_at",
            "recovery_point",
        ]
        read_only_fields = fields


class RestoreRequestSerializer(serializers.Serializer):
    point = serializers.UUIDField()
    target_machine = serializers.UUIDField(required=False, help_text="default: the same server")
    paths = serializers.ListField(
        child=serializers.CharField(max_length=4096), required=False, max_length=1000
    )
    target_dir = serializers.CharField(max_length=4096)
    on_conflict = serializers.ChoiceField(choices=restore.CONFLICT_RULES, default="copy")


class BrowseRequestSerializer(serializers.Serializer):
    point = serializers.UUIDField()
    path = serializers.CharField(required=False, allow_blank=True, max_length=4096)


class MachineViewSet(
    ScopedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Machine.objects.select_related("vault", "policy")
    serializer_class = MachineSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        vault = self.request.query_params.get("vault")
        return queryset.filter(vault_id=vault) if vault else queryset

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "latest_release": latest_release()}

    @action(detail=True, methods=["get"], url_path="recovery-points")
    def recovery_points(self, request, pk=None):
        machine = self.get_object()
        points = list(RecoveryPoint.objects.filter(machine=machine).order_by("-taken_at")[:1000])
        verdicts = point_verdicts(machine, points)
        return Response(
            [
                {
                    "id": str(p.pk),
                    "taken_at": p.taken_at,
                    "type": p.kind,
                    "content": p.content,
                    "files": p.files,
                    "bytes_scanned": p.bytes_scanned,
                    "bytes_stored": p.bytes_stored,
                    "retain_until": p.retain_until,
                    "expires_at": verdicts[str(p.pk)].expires_at if str(p.pk) in verdicts else None,
                    "kept_by": list(verdicts[str(p.pk)].rules) if str(p.pk) in verdicts else [],
                }
                for p in points
            ]
        )

    @extend_schema(request=None, responses={202: dict})
    @action(detail=True, methods=["post"])
    def backup(self, request, pk=None):
        machine = self.get_object()
        require(request.user, self.tenant, machine, Action.OPERATE)
        command = queue_command(request, machine, AgentCommand.Kind.BACKUP, {})
        return Response({"command": str(command.pk)}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=RestoreRequestSerializer, responses={202: dict})
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        source = self.get_object()
        data = RestoreRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        point = get_object_or_404(RecoveryPoint.objects.filter(machine=source), pk=values["point"])
        target = source
        if values.get("target_machine"):
            target = get_object_or_404(self.get_queryset(), pk=values["target_machine"])
        command = restore.request_restore(
            request,
            source=source,
            point=point,
            target=target,
            paths=values.get("paths", []),
            target_dir=values["target_dir"],
            on_conflict=values["on_conflict"],
        )
        return Response({"command": str(command.pk)}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=BrowseRequestSerializer, responses={202: dict})
    @action(detail=True, methods=["post"])
    def browse(self, request, pk=None):
        machine = self.get_object()
        data = BrowseRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        point = get_object_or_404(
            RecoveryPoint.objects.filter(machine=machine), pk=data.validated_data["point"]
        )
        command = restore.request_browse(
            request, machine, point, data.validated_data.get("path", "")
        )
        return Response({"command": str(command.pk)}, status=status.HTTP_202_ACCEPTED)


class CommandViewSet(ScopedViewSetMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A command's state; a browse command also returns the listing while it is cached."""

    queryset = AgentCommand.objects.select_related("machine", "machine__vault")

    def retrieve(self, request, pk=None):
        command = self.get_object()
        body = {
            "id": str(command.pk),
            "machine": command.machine.name,
            "kind": command.kind,
            "state": command.state,
            "created_at": command.created_at,
            "finished_at": command.finished_at,
        }
        if command.kind == AgentCommand.Kind.BROWSE:
            body["entries"] = restore.browse_result(command)
        return Response(body)


class JobViewSet(
    ScopedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Job.objects.select_related("machine", "vault")
    serializer_class = JobSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        params = self.request.query_params
        for param, field in (
            ("vault", "vault_id"),
            ("state", "state"),
            ("kind", "kind"),
            ("machine", "machine__name"),
        ):
            if params.get(param):
                queryset = queryset.filter(**{field: params[param]})
        return queryset
