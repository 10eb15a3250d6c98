from django.contrib.auth import get_user_model

from portal.models import AuditEvent


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def record(
    request, action: str, resource, *, tenant=None, actor=None, status="succeeded", **details
):
    """Write an audit event for ``resource`` (anything with tenant, path and a name).

    ``request`` gives the actor and address; background tasks pass ``actor`` instead.
    """
    user = actor if actor is not None else getattr(request, "user", None)
    label = details.pop("actor_label", None)
    if user is not None and not user.is_authenticated:
        user = None
    if user is not None and not isinstance(user, get_user_model()):
        label = label or user.get_username()  # an agent acting with its machine token
        user = None
    label = label or (user.get_username() if user else "system")
    return AuditEvent.objects.create(
        tenant=tenant or resource.tenant,
        actor=user,
        actor_label=label,
        action=action,
        resource_type=str(getattr(resource, "resource_type", type(resource).__name__)),
        resource_name=str(getattr(resource, "name", resource))[:200],
        resource_path=resource.path,
        status=status,
        details=details,
        ip_address=client_ip(request),
    )
