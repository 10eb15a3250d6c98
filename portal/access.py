"""The one place that decides what a user may see and do.

Every queryset of tenant-owned data passes through :func:`scoped`; base HTML and API views
call it, so a new view cannot forget it. Objects outside the result answer 404.

Roles are granted at subscription, resource-group or vault scope and inherited downward.
A user may also *see* (not change) the subscription and resource group that lead to a
resource they were granted, as in the Azure portal.
"""

from dataclasses import dataclass
from enum import StrEnum

from django.db.models import Q, QuerySet

from portal.models import Role, RoleAssignment
from portal.scope import ScopeFields


class Action(StrEnum):
    READ = "read"
    OPERATE = "operate"  # run backups and restores, register machines
    WRITE = "write"  # create, change and delete resources and policies
    MANAGE_ACCESS = "manage_access"  # role assignments


ROLE_ACTIONS = {
    Role.OWNER: {Action.READ, Action.OPERATE, Action.WRITE, Action.MANAGE_ACCESS},
    Role.CONTRIBUTOR: {Action.READ, Action.OPERATE, Action.WRITE},
    Role.BACKUP_OPERATOR: {Action.READ, Action.OPERATE},
    Role.READER: {Action.READ},
}


@dataclass(frozen=True)
class Grant:
    role: str
    subscription_id: object
    resource_group_id: object
    vault_id: object

    def allows(self, action: Action) -> bool:
        return action in ROLE_ACTIONS[Role(self.role)]


def grants_for(user, tenant) -> list[Grant]:
    """The user's role assignments in the tenant, read once per request."""
    if not user.is_authenticated or tenant is None:
        return []
    cache = user.__dict__.setdefault("_grant_cache", {})
    if tenant.pk not in cache:
        rows = RoleAssignment.objects.filter(tenant=tenant, user=user).values_list(
            "role", "subscription_id", "resource_group_id", "vault_id", "vault__resource_group_id"
        )
        cache[tenant.pk] = [
            Grant(role, sub, rg or vault_rg, vault) for role, sub, rg, vault, vault_rg in rows
        ]
    return cache[tenant.pk]


def forget_grants(user):
    user.__dict__.pop("_grant_cache", None)


def is_operator(user) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def scoped(queryset: QuerySet, user, tenant, action: Action = Action.READ) -> QuerySet:
    """Restrict ``queryset`` to the rows of ``tenant`` that ``user`` may see or act on."""
    model = queryset.model
    fields: ScopeFields = model.scope_fields
    if tenant is None or not user.is_authenticated:
        return queryset.none()
    queryset = queryset.filter(**{fields.tenant: tenant})
    if is_operator(user):
        return queryset
    grants = [g for g in grants_for(user, tenant) if g.allows(action)]
    at_subscription = {g.subscription_id for g in grants if g.resource_group_id is None}
    at_group = {g.resource_group_id for g in grants if g.resource_group_id and not g.vault_id}
    at_vault = {g.vault_id for g in grants if g.vault_id}
    condition = Q(**{f"{fields.subscription}__in": at_subscription})
    if fields.resource_group:
        condition |= Q(**{f"{fields.resource_group}__in": at_group})
    if fields.vault:
        condition |= Q(**{f"{fields.vault}__in": at_vault})
    if action == Action.READ:
        # The containers that lead to a granted resource are visible, not changeable.
        if fields.resource_group is None:
            condition |= Q(**{f"{fields.subscription}__in": {g.subscription_id for g in grants}})
        elif fields.vault is None:
            condition |= Q(
                **{f"{fields.resource_group}__in": {g.resource_group_id for g in grants}}
            )
    return queryset.filter(condition)


def can(user, tenant, obj, action: Action) -> bool:
    """Whether ``user`` may do ``action`` on ``obj``, decided without another query."""
    if not user.is_authenticated or tenant is None or obj.tenant_id != tenant.pk:
        return False
    if is_operator(user):
        return True
    sub_id, rg_id, vault_id = obj.scope_ids()
    for grant in grants_for(user, tenant):
        if not grant.allows(action) or grant.subscription_id != sub_id:
            continue
        if grant.resource_group_id is None:
            return True
        if rg_id is not None and grant.resource_group_id == rg_id and grant.vault_id is None:
            return True
        if vault_id is not None and grant.vault_id == vault_id:
            return True
    return False


def readable_paths(user, tenant) -> list[str] | None:
    """Resource-path prefixes the user may read, for rows keyed by path (audit events).

    None means everything in the tenant (platform operators).
    """
    if is_operator(user):
        return None
    paths = []
    for g in grants_for(user, tenant):
        path = f"/subscriptions/{g.subscription_id}"
        if g.resource_group_id:
            path += f"/resourceGroups/{g.resource_group_id}"
        if g.vault_id:
            path += f"/vaults/{g.vault_id}"
        paths.append(path)
    return paths


def paths_filter(paths: list[str] | None, field: str = "resource_path") -> Q:
    if paths is None:
        return Q()
    condition = Q(pk__in=[])
    for path in paths:
        condition |= Q(**{field: path}) | Q(**{f"{field}__startswith": path + "/"})
    return condition
