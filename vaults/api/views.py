import json

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from portal.api.base import ScopedViewSetMixin
from portal.models import ResourceGroup, Subscription
from portal.resources import is_uuid
from vaults import services
from vaults.api.serializers import (
    NameCheckSerializer,
    SecurityPinSerializer,
    VaultCreateSerializer,
    VaultSerializer,
    VaultUpdateSerializer,
)
from vaults.models import SecurityPin, Vault


class VaultViewSet(
    ScopedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Recovery Services vaults: the same rules and messages as the portal's pages."""

    queryset = Vault.objects.select_related("region")
    serializer_class = VaultSerializer

    @extend_schema(request=VaultCreateSerializer, responses={202: VaultSerializer})
    def create(self, request):
        data = VaultCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        subscription = get_object_or_404(
            self.scoped(Subscription.objects.all()), pk=values["subscription_id"]
        )
        group = None
        if values.get("resource_group_id"):
            group = get_object_or_404(
                self.scoped(ResourceGroup.objects.filter(subscription=subscription)),
                pk=values["resource_group_id"],
            )
        vault = services.create_vault(
            request,
            subscription=subscription,
            name=values["name"],
            region=values["region"],
            resource_group=group,
            new_resource_group=values.get("new_resource_group", ""),
        )
        return Response(VaultSerializer(vault).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=VaultUpdateSerializer, responses=VaultSerializer)
    def partial_update(self, request, pk=None):
        vault = self.get_object()
        data = VaultUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "redundancy" in values:
            services.update_redundancy(request, vault, values["redundancy"])
        security = {"soft_delete_enabled", "soft_delete_days", "immutability"} & values.keys()
        if security:
            services.update_security(
                request,
                vault,
                soft_delete_enabled=values.get("soft_delete_enabled", vault.soft_delete_enabled),
                soft_delete_days=values.get("soft_delete_days", vault.soft_delete_days),
                immutability=values.get("immutability", vault.immutability),
                pin=values.get("pin", ""),
            )
        return Response(VaultSerializer(vault).data)

    def perform_destroy(self, instance):
        services.delete_vault(self.request, instance)

    @extend_schema(
        parameters=[OpenApiParameter("name", str), OpenApiParameter("subscription", str)],
        responses=NameCheckSerializer,
    )
    @action(detail=False, methods=["get"], url_path="check-name")
    def check_name(self, request):
        name = request.query_params.get("name", "")[:200]
        subscription_id = request.query_params.get("subscription")
        subscription = None
        if is_uuid(subscription_id):
            subscription = self.scoped(Subscription.objects.filter(pk=subscription_id)).first()
        errors = services.vault_name_errors(name, subscription)
        return Response({"name": name, "valid": not errors, "errors": errors})

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"])
    def credentials(self, request, pk=None):
        """A new vault credentials file (JSON). Valid 10 days, registers one machine."""
        filename, body = services.issue_credentials(request, self.get_object())
        response = Response(json.loads(body))
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @extend_schema(request=None, responses={201: SecurityPinSerializer})
    @action(detail=True, methods=["post"], url_path="security-pin")
    def security_pin(self, request, pk=None):
        pin = services.generate_security_pin(request, self.get_object())
        return Response(
            {"pin": pin, "valid_minutes": SecurityPin.VALID_MINUTES}, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=None, responses={202: VaultSerializer})
    @action(detail=True, methods=["post"], url_path="retry-deployment")
    def retry_deployment(self, request, pk=None):
        vault = self.get_object()
        services.retry_deployment(request, vault)
        return Response(VaultSerializer(vault).data, status=status.HTTP_202_ACCEPTED)
