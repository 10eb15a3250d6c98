"""Business rules of the tenancy shell: resource groups, access, tokens.

Views, API views and commands call these; each checks the actor's rights, validates,
writes and audits in one transaction.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal import audit, events, tokens
from portal.access import Action, can, forget_grants
from portal.models import AccessToken, Membership, ResourceGroup, RoleAssignment


def require(user, tenant, obj, action: Action):
    if not can(user, tenant, obj, action):
        raise PermissionDenied(
            _("Your role does not allow this action on %(name)s.") % {"name": obj}
        )


def create_resource_group(request, subscription, *, name, region):
    require(request.user, request.tenant, subscription, Action.WRITE)
    group = ResourceGroup(
        tenant=subscription.tenant, subscription=subscription, name=name, region=region
    )
    group.full_clean(exclude=["tenant", "subscription"])
    if subscription.resource_groups.filter(name__iexact=name).exists():
        raise ValidationError({"name": _("A resource group with this name already exists.")})
    try:
        with transaction.atomic():
            group.save()
            audit.record(request, "resource_group.create", group, region=region.code)
    except IntegrityError as exc:
        raise ValidationError(
            {"name": _("A resource group with this name already exists.")}
        ) from exc
    return group


def delete_resource_group(request, group):
    require(request.user, request.tenant, group, Action.WRITE)
    if group.vaults.exists():
        raise ValidationError(
            _("Delete the vaults in %(name)s before deleting the resource group.")
            % {"name": group.name}
        )
    with transaction.atomic():
        audit.record(request, "resource_group.delete", group)
        group.delete()


def add_role_assignment(request, scope, *, email: str, role: str):
    """Grant ``role`` on ``scope`` (a subscription, resource group or vault) to a member."""
    require(request.user, request.tenant, scope, Action.MANAGE_ACCESS)
    user = get_user_model().objects.filter(email__iexact=email.strip()).first()
    if user is None or not Membership.objects.filter(tenant=scope.tenant, user=user).exists():
        raise ValidationError(
            {
                "email": _("No member of this directory has the e-mail address %(email)s.")
                % {"email": email}
            }
        )
    sub_id, rg_id, vault_id = scope.scope_ids()
    assignment = RoleAssignment(
        tenant=scope.tenant,
        user=user,
        role=role,
        subscription_id=sub_id,
        resource_group_id=rg_id if vault_id is None else None,
        vault_id=vault_id,
        created_by=request.user,
    )
    assignment.full_clean(
        exclude=["tenant", "user", "subscription", "resource_group", "vault", "created_by"]
    )
    if RoleAssignment.objects.filter(
        user=user,
        role=role,
        subscription_id=sub_id,
        resource_group_id=assignment.resource_group_id,
        vault_id=vault_id,
    ).exists():
        raise ValidationError({"role": _("This user already has this role here.")})
    with transaction.atomic():
        assignment.save()
        audit.record(request, "role_assignment.create", scope, user=user.email, role=role)
    forget_grants(user)
    return assignment


def remove_role_assignment(request, assignment):
    scope = assignment.scope
    require(request.user, request.tenant, scope, Action.MANAGE_ACCESS)
    owners_left = RoleAssignment.objects.filter(
        subscription_id=assignment.subscription_id,
        role="owner",
        resource_group__isnull=True,
        vault__isnull=True,
    ).exclude(pk=assignment.pk)
    if (
        assignment.role == "owner"
        and assignment.scope == assignment.subscription
        and not owners_left.exists()
    ):
        raise ValidationError(_("A subscription keeps at least one owner."))
    with transaction.atomic():
        audit.record(
            request,
            "role_assignment.delete",
            scope,
            user=assignment.user.email,
            role=assignment.role,
        )
        assignment.delete()
        events.access_changed(assignment.user_id)
    forget_grants(assignment.user)


MAX_TOKEN_DAYS = 366


def create_access_token(user, tenant, *, name: str, days: int, request=None):
    """Issue a personal access token; the plain token is returned once and never stored."""
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise ValidationError(
            {"days": _("Choose between 1 and %(max)s days.") % {"max": MAX_TOKEN_DAYS}}
        )
    if not name.strip():
        raise ValidationError({"name": _("Give the token a name.")})
    issued = tokens.issue(AccessToken.PREFIX)
    with transaction.atomic():
        token = AccessToken.objects.create(
            tenant=tenant,
            user=user,
            name=name.strip()[:100],
            key_id=issued.key_id,
            secret_hash=issued.secret_hash,
            expires_at=timezone.now() + timedelta(days=days),
        )
        audit.record(
            request, "access_token.create", _TokenResource(token), actor=user, name=token.name
        )
    return token, issued.token


def revoke_access_token(request, token):
    if token.user_id != request.user.pk:
        raise PermissionDenied
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(request, "access_token.revoke", _TokenResource(token), name=token.name)


class _TokenResource:
    """Presents a token to the audit log as a tenant-level resource."""

    resource_type = gettext_lazy("Personal access token")

    def __init__(self, token):
        self.tenant = token.tenant
        self.name = token.name
        self.path = f"/tenants/{token.tenant_id}/accessTokens/{token.key_id}"
