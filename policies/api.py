"""Tenant API for backup policies, their assignment to machines, and machine throttling.

Serializers only shape JSON: every rule and message comes from policies.services, so the
API refuses exactly what the portal's pages refuse, in the same words.
"""

import uuid

from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from agents.models import Machine
from policies import services
from policies.documents import throttling_doc
from policies.models import BackupPolicy
from policies.throttling import set_throttling
from portal.api.base import ScopedViewSetMixin
from portal.resources import is_uuid
from vaults.models import Vault

# --- documentation of the JSON documents (parsed leniently, checked by the services) -----------


class ScheduleSchema(serializers.Serializer):
    frequency = serializers.ChoiceField(choices=["daily", "weekly"])
    times = serializers.ListField(
        child=serializers.CharField(help_text="HH:MM, local to the effective time zone"),
        min_length=1,
        max_length=3,
        help_text='1 to 3 times a day, e.g. ["00:00", "18:00"]',
    )
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        required=False,
        help_text="Weekly schedules: 0 = Monday … 6 = Sunday",
    )
    every_weeks = serializers.IntegerField(
        min_value=1, max_value=4, required=False, help_text="Weekly schedules: repeat every N weeks"
    )
    anchor = serializers.DateField(
        required=False,
        help_text="Weekly schedules repeating every 2-4 weeks: a day of the first week",
    )


class DailyRuleSchema(serializers.Serializer):
    days = serializers.IntegerField(min_value=7, max_value=9999)


class WeeklyRuleSchema(serializers.Serializer):
    weekdays = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=6))
    weeks = serializers.IntegerField(min_value=1, max_value=5163)


class MonthlyRuleSchema(serializers.Serializer):
    months = serializers.IntegerField(min_value=1, max_value=1188)
    days_of_month = serializers.ListField(
        child=serializers.CharField(), required=False, help_text='1-28 or "last"'
    )
    weeks_of_month = serializers.ListField(
        child=serializers.ChoiceField(choices=["first", "second", "third", "fourth", "last"]),
        required=False,
    )
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), required=False
    )


class YearlyRuleSchema(MonthlyRuleSchema):
    months = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=12), help_text="1 = January"
    )
    years = serializers.IntegerField(min_value=1, max_value=99)


class RetentionSchema(serializers.Serializer):
    daily = DailyRuleSchema(required=False)
    weekly = WeeklyRuleSchema(required=False)
    monthly = MonthlyRuleSchema(required=False)
    yearly = YearlyRuleSchema(required=False)


class ExclusionSchema(serializers.Serializer):
    folder = serializers.CharField(required=False, allow_null=True)
    pattern = serializers.CharField(required=False, allow_null=True, help_text="e.g. *.tmp")
    include_subfolders = serializers.BooleanField(default=True)


@extend_schema_field(ScheduleSchema)
class ScheduleField(serializers.JSONField):
    pass


@extend_schema_field(RetentionSchema)
class RetentionField(serializers.JSONField):
    pass


@extend_schema_field(ExclusionSchema(many=True))
class ExclusionsField(serializers.JSONField):
    pass


@extend_schema_field(serializers.ListField(child=serializers.CharField()))
class PathsField(serializers.JSONField):
    pass


# --- policies ---------------------------------------------------------------------------------------


class MachineRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class PolicySerializer(serializers.ModelSerializer):
    path = serializers.CharField(read_only=True)
    items = PathsField()
    exclusions = ExclusionsField()
    schedule = ScheduleField()
    retention = RetentionField()
    schedule_summary = serializers.SerializerMethodField()
    retention_summary = serializers.SerializerMethodField()
    machine_count = serializers.SerializerMethodField()
    machines = serializers.SerializerMethodField()

    class Meta:
        model = BackupPolicy
        fields = [
            "id",
            "name",
            "path",
            "vault",
            "items",
            "exclusions",
            "system_state",
            "schedule",
            "retention",
            "time_zone",
            "initial_backup",
            "version",
            "schedule_summary",
            "retention_summary",
            "machine_count",
            "machines",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def _described(self, policy):
        if not hasattr(policy, "_described"):
            policy._described = services.describe_policy(
                policy.schedule, policy.retention, policy.time_zone
            )
        return policy._described

    def get_schedule_summary(self, policy) -> str:
        return self._described(policy)["schedule"]

    def get_retention_summary(self, policy) -> list[str]:
        return self._described(policy)["retention"]

    def get_machine_count(self, policy) -> int:
        return len(policy.machines.all())

    @extend_schema_field(MachineRefSerializer(many=True))
    def get_machines(self, policy):
        return [{"id": m.pk, "name": m.name} for m in policy.machines.all()]


class PolicyWriteSerializer(serializers.Serializer):
    """The fields of a policy; ranges and rules are checked by the service, not here."""

    vault_id = serializers.UUIDField(required=False, help_text="On create: the policy's vault")
    name = serializers.CharField(max_length=200, allow_blank=True)
    items = PathsField(required=False)
    exclusions = ExclusionsField(required=False)
    system_state = serializers.JSONField(required=False, help_text="true or false")
    schedule = ScheduleField()
    retention = RetentionField()
    time_zone = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="IANA name such as Europe/Berlin; empty: each machine's own time zone",
    )
    initial_backup = serializers.CharField(
        required=False, help_text='"network" (default) or "offline"'
    )


class AssignSerializer(serializers.Serializer):
    machine_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1)


class AssignResultSerializer(serializers.Serializer):
    policy = serializers.UUIDField()
    machines = MachineRefSerializer(many=True)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("vault", uuid.UUID, description="Only this vault's policies")]
    )
)
class PolicyViewSet(
    ScopedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Backup policies: what a machine backs up, when, and how long points are kept."""

    queryset = BackupPolicy.objects.select_related("vault").prefetch_related(
        Prefetch("machines", queryset=Machine.objects.only("id", "name", "policy_id"))
    )
    serializer_class = PolicySerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        queryset = super().get_queryset()
        vault = self.request.query_params.get("vault")
        if vault is not None:
            queryset = queryset.filter(vault_id=vault) if is_uuid(vault) else queryset.none()
        return queryset

    def _reload(self, policy):
        return self.get_queryset().get(pk=policy.pk)

    @extend_schema(request=PolicyWriteSerializer, responses={201: PolicySerializer})
    def create(self, request):
        data = PolicyWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        vault_id = values.pop("vault_id", None)
        if vault_id is None:
            raise serializers.ValidationError({"vault_id": [_("Choose the vault of the policy.")]})
        vault = get_object_or_404(self.scoped(Vault.objects.all()), pk=vault_id)
        policy = services.create_policy(request, vault, **values)
        return Response(PolicySerializer(self._reload(policy)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PolicyWriteSerializer, responses=PolicySerializer)
    def partial_update(self, request, pk=None):
        policy = self.get_object()
        data = PolicyWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "vault_id" in values and values.pop("vault_id") != policy.vault_id:
            raise serializers.ValidationError(
                {
                    "vault_id": [
                        _("A policy stays in its vault; create a new policy in the other vault.")
                    ]
                }
            )
        services.update_policy(request, policy, **values)
        return Response(PolicySerializer(self._reload(policy)).data)

    def perform_destroy(self, instance):
        services.delete_policy(self.request, instance)

    @extend_schema(request=AssignSerializer, responses=AssignResultSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Give this policy to machines of its vault (each machine has at most one policy)."""
        policy = self.get_object()
        data = AssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ids = set(data.validated_data["machine_ids"])
        machines = list(self.scoped(Machine.objects.select_related("vault").filter(pk__in=ids)))
        if len(machines) != len(ids):
            raise NotFound(_("No machine with one of those ids."))
        with transaction.atomic():
            for machine in machines:
                services.assign_policy(request, machine, policy)
        return Response(
            {
                "policy": policy.pk,
                "machines": [{"id": m.pk, "name": m.name} for m in sorted(machines, key=str)],
            }
        )


# --- machines -----------------------------------------------------------------------------------


class MachinePolicySerializer(serializers.Serializer):
    policy_id = serializers.UUIDField(allow_null=True, help_text="null takes the policy away")


class MachinePolicyResultSerializer(serializers.Serializer):
    machine = serializers.UUIDField()
    policy_id = serializers.UUIDField(allow_null=True)
    settings_version = serializers.IntegerField()


class ThrottlingSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    work_days = serializers.JSONField(
        required=False, allow_null=True, help_text="0 = Monday … 6 = Sunday"
    )
    work_start = serializers.JSONField(required=False, allow_null=True, help_text="HH:MM")
    work_end = serializers.JSONField(required=False, allow_null=True, help_text="HH:MM")
    work_hours_kbps = serializers.JSONField(
        required=False, allow_null=True, help_text="512 to 1047552 (1,023 Mbps)"
    )
    off_hours_kbps = serializers.JSONField(
        required=False, allow_null=True, help_text="512 to 1047552 (1,023 Mbps)"
    )


class ThrottlingResultSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    work_days = serializers.ListField(child=serializers.IntegerField())
    work_start = serializers.CharField(allow_null=True)
    work_end = serializers.CharField(allow_null=True)
    work_hours_kbps = serializers.IntegerField(allow_null=True)
    off_hours_kbps = serializers.IntegerField(allow_null=True)
    settings_version = serializers.IntegerField()


def _throttling(machine) -> dict:
    return {**throttling_doc(machine), "settings_version": machine.settings_version}


class MachineSettingsViewSet(ScopedViewSetMixin, viewsets.GenericViewSet):
    """A registered machine's backup policy and network throttling."""

    queryset = Machine.objects.select_related("vault", "policy")
    serializer_class = ThrottlingResultSerializer

    @extend_schema(request=MachinePolicySerializer, responses=MachinePolicyResultSerializer)
    @action(detail=True, methods=["put"])
    def policy(self, request, pk=None):
        machine = self.get_object()
        data = MachinePolicySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy_id = data.validated_data["policy_id"]
        policy = None
        if policy_id is not None:
            policy = get_object_or_404(
                self.scoped(BackupPolicy.objects.select_related("vault")), pk=policy_id
            )
        services.assign_policy(request, machine, policy)
        return Response(
            {
                "machine": machine.pk,
                "policy_id": machine.policy_id,
                "settings_version": machine.settings_version,
            }
        )

    @extend_schema(methods=["GET"], request=None, responses=ThrottlingResultSerializer)
    @extend_schema(
        methods=["PUT"], request=ThrottlingSerializer, responses=ThrottlingResultSerializer
    )
    @action(detail=True, methods=["get", "put"])
    def throttling(self, request, pk=None):
        """Network throttling (work hours and bandwidth), as the agent's Throttling tab."""
        machine = self.get_object()
        if request.method == "PUT":
            data = ThrottlingSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            set_throttling(request, machine, **data.validated_data)
        return Response(_throttling(machine))
