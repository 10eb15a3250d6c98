from django.contrib.auth import get_user_model
from rest_framework import serializers

from portal.models import AuditEvent, Region, ResourceGroup, Role, RoleAssignment, Subscription


class RegionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Region
        fields = ["code", "name", "geography"]


class SubscriptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Subscription
        fields = ["id", "name", "created_at"]


class ResourceGroupSerializer(serializers.ModelSerializer):
    subscription = serializers.PrimaryKeyRelatedField(read_only=True)
    subscription_id = serializers.UUIDField(write_only=True)
    region = serializers.SlugRelatedField(slug_field="code", queryset=Region.objects.all())

    class Meta:
        model = ResourceGroup
        fields = ["id", "name", "subscription", "subscription_id", "region", "created_at"]
        read_only_fields = ["id", "created_at"]


class RoleAssignmentSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)
    scope = serializers.SerializerMethodField()
    scope_type = serializers.SerializerMethodField()

    class Meta:
        model = RoleAssignment
        fields = [
            "id",
            "email",
            "role",
            "scope",
            "scope_type",
            "subscription",
            "resource_group",
            "vault",
            "created_at",
        ]
        read_only_fields = ["id", "scope", "scope_type", "created_at"]
        extra_kwargs = {
            "subscription": {"required": False, "allow_null": True},
        }

    def get_scope(self, obj) -> str:
        return obj.scope.path

    def get_scope_type(self, obj) -> str:
        return str(obj.scope.resource_type)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_label",
            "action",
            "status",
            "resource_type",
            "resource_name",
            "resource_path",
            "ip_address",
            "details",
        ]


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "email"]
