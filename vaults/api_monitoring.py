"""Tenant API for backup alerts and vault webhooks: the same rules as the portal's pages."""

import uuid

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from portal.api.base import ScopedViewSetMixin
from vaults import alerts as alert_service
from vaults import webhooks
from vaults.models import Alert, AlertKind, Vault, VaultWebhook


class AlertSerializer(serializers.ModelSerializer):
    title = serializers.CharField(source="get_kind_display", read_only=True)
    description = serializers.SerializerMethodField()
    vault_name = serializers.CharField(source="vault.name", default=None, read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "title",
            "severity",
            "state",
            "description",
            "subject_name",
            "vault",
            "vault_name",
            "machine",
            "job",
            "occurrences",
            "raised_at",
            "last_occurred_at",
            "resolved_at",
            "resolution",
            "details",
        ]
        read_only_fields = fields

    def get_description(self, alert) -> str:
        return alert_service.describe(alert)


class AlertViewSet(
    ScopedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Backup alerts of every vault you can see, and directory-wide alerts (storage quota)."""

    queryset = Alert.objects.all()
    serializer_class = AlertSerializer

    def get_queryset(self):
        alerts = alert_service.visible_alerts(self.request.user, self.tenant).select_related(
            "vault"
        )
        params = self.request.query_params
        if params.get("vault"):
            vault = params["vault"]
            alerts = alerts.filter(vault_id=vault) if _uuid(vault) else alerts.none()
        if params.get("state") in Alert.State.values:
            alerts = alerts.filter(state=params["state"])
        if params.get("severity") in Alert.Severity.values:
            alerts = alerts.filter(severity=params["severity"])
        if params.get("kind") in AlertKind.values:
            alerts = alerts.filter(kind=params["kind"])
        return alerts

    @extend_schema(
        parameters=[
            OpenApiParameter("vault", str),
            OpenApiParameter("state", str, enum=Alert.State.values),
            OpenApiParameter("severity", str, enum=Alert.Severity.values),
            OpenApiParameter("kind", str, enum=AlertKind.values),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        """Mark the alert resolved (Backup Operator or above); audited."""
        alert = self.get_object()
        alert_service.resolve_by_user(request, alert)
        return Response(AlertSerializer(alert, context={"request": request}).data)


class VaultWebhookSerializer(serializers.ModelSerializer):
    class Meta:
        model = VaultWebhook
        fields = ["id", "vault", "url", "enabled", "last_delivery_at", "last_status", "created_at"]
        read_only_fields = ["id", "vault", "last_delivery_at", "last_status", "created_at"]


class VaultWebhookCreatedSerializer(VaultWebhookSerializer):
    """Shown once, on creation: the secret that signs each delivery."""

    class Meta(VaultWebhookSerializer.Meta):
        fields = [*VaultWebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class VaultWebhookViewSet(
    ScopedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A vault's outgoing webhooks: alert events POSTed as signed JSON."""

    queryset = VaultWebhook.objects.select_related("vault")
    serializer_class = VaultWebhookSerializer
    pagination_class = None

    def vault(self):
        return get_object_or_404(self.scoped(Vault.objects.all()), pk=self.kwargs["vault_pk"])

    def get_queryset(self):
        return self.scoped(self.queryset.filter(vault=self.vault()))

    @extend_schema(request=VaultWebhookSerializer, responses={201: VaultWebhookCreatedSerializer})
    def create(self, request, vault_pk=None):
        data = VaultWebhookSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        webhook = webhooks.create_webhook(
            request,
            self.vault(),
            url=data.validated_data["url"],
            enabled=data.validated_data.get("enabled", True),
        )
        return Response(VaultWebhookCreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=VaultWebhookSerializer, responses=VaultWebhookSerializer)
    def partial_update(self, request, vault_pk=None, pk=None):
        webhook = self.get_object()
        data = VaultWebhookSerializer(webhook, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        webhooks.update_webhook(
            request,
            webhook,
            url=data.validated_data.get("url"),
            enabled=data.validated_data.get("enabled"),
        )
        return Response(VaultWebhookSerializer(webhook).data)

    def perform_destroy(self, instance):
        webhooks.delete_webhook(self.request, instance)


def _uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
