from rest_framework import serializers

from portal.models import Region
from vaults.models import Immutability, Redundancy, Vault


class VaultSerializer(serializers.ModelSerializer):
    region = serializers.SlugRelatedField(slug_field="code", read_only=True)
    path = serializers.CharField(read_only=True)

    class Meta:
        model = Vault
        fields = [
            "id",
            "name",
            "path",
            "subscription",
            "resource_group",
            "region",
            "state",
            "state_reason",
            "redundancy",
            "soft_delete_enabled",
            "soft_delete_days",
            "immutability",
            "storage_bytes",
            "created_at",
        ]
        read_only_fields = fields


class VaultCreateSerializer(serializers.Serializer):
    subscription_id = serializers.UUIDField()
    resource_group_id = serializers.UUIDField(required=False, allow_null=True)
    new_resource_group = serializers.CharField(required=False, allow_blank=True, max_length=90)
    name = serializers.CharField(max_length=200)
    region = serializers.SlugRelatedField(slug_field="code", queryset=Region.objects.all())


class VaultUpdateSerializer(serializers.Serializer):
    redundancy = serializers.ChoiceField(choices=Redundancy.choices, required=False)
    soft_delete_enabled = serializers.BooleanField(required=False)
    soft_delete_days = serializers.IntegerField(required=False)
    immutability = serializers.ChoiceField(choices=Immutability.choices, required=False)
    pin = serializers.CharField(required=False, allow_blank=True, max_length=8)


class NameCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    valid = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.CharField())


class SecurityPinSerializer(serializers.Serializer):
    pin = serializers.CharField()
    valid_minutes = serializers.IntegerField()
