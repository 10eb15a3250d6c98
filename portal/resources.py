"""Finding a resource by its path, within what the user may see."""

import re
import uuid

from django.http import Http404

from portal.access import scoped
from portal.models import ResourceGroup, Subscription

_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-f-]{36})"
    r"(?:/resourceGroups/(?P<rg>[0-9a-f-]{36})"
    r"(?:/vaults/(?P<vault>[0-9a-f-]{36}))?)?/?$"
)


def is_uuid(value) -> bool:
    """Whether a query parameter holds a UUID (ids in URLs are checked by the router)."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def resolve_path(path: str, user, tenant):
    """The subscription, resource group or vault at ``path``; Http404 when not visible."""
    from vaults.models import Vault

    match = _PATH.match(path or "")
    if not match:
        raise Http404
    try:
        ids = {k: uuid.UUID(v) for k, v in match.groupdict().items() if v}
    except ValueError as exc:
        raise Http404 from exc
    if "vault" in ids:
        qs = Vault.objects.filter(pk=ids["vault"], resource_group_id=ids["rg"])
    elif "rg" in ids:
        qs = ResourceGroup.objects.filter(pk=ids["rg"])
    else:
        qs = Subscription.objects.all()
    obj = scoped(
        qs.filter(**({"subscription_id": ids["sub"]} if "rg" in ids else {"pk": ids["sub"]})),
        user,
        tenant,
    ).first()
    if obj is None:
        raise Http404
    return obj
