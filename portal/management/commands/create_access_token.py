from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.services import MAX_TOKEN_DAYS, create_access_token
from portal.tenancy import tenants_for


class Command(BaseCommand):
    help = "Print a new personal access token for EMAIL (for scripts and automation)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument(
            "--days",
            type=int,
            default=30,
            help=f"validity, 1 to {MAX_TOKEN_DAYS} days (default 30)",
        )
        parser.add_argument("--tenant", help="directory domain, when the user belongs to several")
        parser.add_argument("--name", default="command line")

    def handle(self, *args, email, days, tenant, name, **options):
        user = get_user_model().objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user has the e-mail address {email}.")
        tenants = tenants_for(user)
        if tenant:
            tenants = tenants.filter(domain=tenant)
        if tenants.count() != 1:
            domains = ", ".join(tenants_for(user).values_list("domain", flat=True)) or "none"
            raise CommandError(f"Choose one directory with --tenant (member of: {domains}).")
        try:
            _token, plain = create_access_token(user, tenants.get(), name=name, days=days)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(plain)
