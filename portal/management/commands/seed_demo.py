from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from portal.models import Membership, Region, ResourceGroup, RoleAssignment, Subscription, Tenant
from portal.regions import load_regions

DEMO_PASSWORD = "demo-password-123"
PEOPLE = [
    ("owner@contoso.example", "owner", "Contoso owner"),
    ("reader@contoso.example", "reader", "Contoso reader"),
]


class Command(BaseCommand):
    help = "Create (or refresh) the demo tenant Contoso with an owner and a reader. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--operator",
            action="store_true",
            help="also create the platform operator admin@example.com",
        )

    @transaction.atomic
    def handle(self, *args, **options):
        load_regions(Region)
        tenant, _ = Tenant.objects.get_or_create(domain="contoso", defaults={"name": "Contoso"})
        subscription, _ = Subscription.objects.get_or_create(
            tenant=tenant, name="Contoso Production"
        )
        group, _ = ResourceGroup.objects.get_or_create(
            tenant=tenant,
            subscription=subscription,
            name="backup-rg",
            defaults={"region": Region.objects.get(code="westeurope")},
        )
        User = get_user_model()
        lines = []
        for email, role, full_name in PEOPLE:
            user, created = User.objects.get_or_create(
                username=email, defaults={"email": email, "first_name": full_name}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            Membership.objects.get_or_create(tenant=tenant, user=user)
            RoleAssignment.objects.get_or_create(
                tenant=tenant,
                user=user,
                role=role,
                subscription=subscription,
                resource_group=None,
                vault=None,
            )
            lines.append(f"  {email:<28} {role}")
        if options["operator"]:
            admin, created = User.objects.get_or_create(
                username="admin@example.com",
                defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True},
            )
            if created:
                admin.set_password(DEMO_PASSWORD)
                admin.save()
            lines.append(f"  {'admin@example.com':<28} platform operator")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo tenant {tenant.name} is ready ({group.name} in {subscription.name})."
            )
        )
        self.stdout.write(
            f"Sign in at {settings.PORTAL_URL}/login/ with password {DEMO_PASSWORD!r} as:"
        )
        self.stdout.write("\n".join(lines))
