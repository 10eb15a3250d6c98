"""Which directory (tenant) a request works in."""

from django.http import Http404

from portal.access import is_operator
from portal.models import Tenant

SESSION_KEY = "tenant_id"


def tenants_for(user):
    if is_operator(user):
        return Tenant.objects.all()
    if not user.is_authenticated:
        return Tenant.objects.none()
    return Tenant.objects.filter(memberships__user=user)


def current_tenant(request) -> Tenant | None:
    """The tenant chosen in the session, else the user's first; None for strangers."""
    user = request.user
    if not user.is_authenticated:
        return None
    tenants = tenants_for(user)
    chosen = request.session.get(SESSION_KEY)
    tenant = tenants.filter(pk=chosen).first() if chosen else None
    return tenant or tenants.first()


def switch_tenant(request, tenant_id) -> Tenant:
    tenant = tenants_for(request.user).filter(pk=tenant_id).first()
    if tenant is None:
        raise Http404
    request.session[SESSION_KEY] = str(tenant.pk)
    return tenant
