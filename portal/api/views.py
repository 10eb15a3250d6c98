from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from portal import services
from portal.access import paths_filter, readable_paths
from portal.api.base import ScopedReadOnlyViewSet, ScopedViewSetMixin
from portal.api.serializers import (
    AuditEventSerializer,
    RegionSerializer,
    ResourceGroupSerializer,
    RoleAssignmentSerializer,
    SubscriptionSerializer,
)
from portal.models import AuditEvent, Region, ResourceGroup, Role, RoleAssignment, Subscription
from portal.resources import resolve_path


class RegionViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Region.objects.all()
    serializer_class = RegionSerializer
    pagination_class = None


class SubscriptionViewSet(ScopedReadOnlyViewSet):
    queryset = Subscription.objects.all()
    serializer_class = SubscriptionSerializer


class ResourceGroupViewSet(
    ScopedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = ResourceGroup.objects.select_related("region")
    serializer_class = ResourceGroupSerializer
    filterset_fields = ["subscription"]

    def get_queryset(self):
        queryset = super().get_queryset()
        subscription = self.request.query_params.get("subscription")
        return queryset.filter(subscription_id=subscription) if subscription else queryset

    def perform_create(self, serializer):
        subscription = get_object_or_404(
            self.scoped(Subscription.objects.all()), pk=serializer.validated_data["subscription_id"]
        )
        serializer.instance = services.create_resource_group(
            self.request,
            subscription,
            name=serializer.validated_data["name"],
            region=serializer.validated_data["region"],
        )

    def perform_destroy(self, instance):
        services.delete_resource_group(self.request, instance)


class RoleAssignmentCreateSerializer(serializers.Serializer):
    scope = serializers.CharField(
        max_length=300, help_text="Resource path, e.g. /subscriptions/<id>"
    )
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)


class RoleAssignmentViewSet(
    ScopedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = RoleAssignment.objects.select_related(
        "user", "subscription", "resource_group", "vault"
    )
    serializer_class = RoleAssignmentSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        scope = self.request.query_params.get("scope")
        if scope:
            sub_id, rg_id, vault_id = resolve_path(
                scope, self.request.user, self.tenant
            ).scope_ids()
            queryset = queryset.filter(subscription_id=sub_id)
            if rg_id:
                queryset = queryset.filter(resource_group_id__in=[rg_id, None])
        return queryset

    @extend_schema(
        request=RoleAssignmentCreateSerializer, responses={201: RoleAssignmentSerializer}
    )
    def create(self, request):
        data = RoleAssignmentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scope = resolve_path(data.validated_data["scope"], request.user, self.tenant)
        assignment = services.add_role_assignment(
            request, scope, email=data.validated_data["email"], role=data.validated_data["role"]
        )
        return Response(RoleAssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.remove_role_assignment(self.request, instance)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The activity log: events on resources the user can read, newest first."""

    serializer_class = AuditEventSerializer

    def get_queryset(self):
        tenant = self.request.tenant
        if tenant is None:
            return AuditEvent.objects.none()
        queryset = AuditEvent.objects.filter(tenant=tenant).filter(
            paths_filter(readable_paths(self.request.user, tenant))
        )
        scope = self.request.query_params.get("scope")
        if scope:
            path = resolve_path(scope, self.request.user, tenant).path
            queryset = queryset.filter(paths_filter([path]))
        return queryset
