from django.contrib.auth import get_user_model
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from portal.models import AuditEvent

# How operations read in the activity log; events store the code, pages show the words.
ACTION_LABELS = {
    "access_token.create": _("Create personal access token"),
    "access_token.revoke": _("Revoke personal access token"),
    "resource_group.create": _("Create resource group"),
    "resource_group.delete": _("Delete resource group"),
    "role_assignment.create": _("Add role assignment"),
    "role_assignment.delete": _("Remove role assignment"),
    "vault.create": _("Create Recovery Services vault"),
    "vault.deploy": _("Deploy Recovery Services vault"),
    "vault.deploy.retry": _("Retry vault deployment"),
    "vault.delete": _("Delete Recovery Services vault"),
    "vault.redundancy.update": _("Update storage replication type"),
    "vault.security.update": _("Update security settings"),
    "vault.security_pin.generate": _("Generate security PIN"),
    "vault.credentials.download": _("Download vault credentials"),
    "machine.register": _("Register server"),
    "machine.reregister": _("Re-register server"),
    "machine.report": _("Server reported its settings"),
    "machine.keys.update": _("Update encryption keys"),
    "machine.delete": _("Delete server"),
    "machine.policy.assign": _("Assign backup policy"),
    "machine.policy.remove": _("Remove backup policy"),
    "machine.throttling.update": _("Update network throttling"),
    "policy.create": _("Create backup policy"),
    "policy.update": _("Update backup policy"),
    "policy.delete": _("Delete backup policy"),
    "job.backup.start": _("Start backup"),
    "job.backup.finish": _("Finish backup"),
    "job.backup.timeout": _("Backup stopped reporting"),
    "job.restore.start": _("Start restore"),
    "job.restore.finish": _("Finish restore"),
    "job.restore.timeout": _("Restore stopped reporting"),
    "restore.request": _("Request restore"),
    "recovery_point.expire": _("Expire recovery point"),
}


def action_label(action: str) -> str:
    return str(ACTION_LABELS.get(action, action))


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
    with translation.override("en"):  # stored in the source language, shown in the reader's
        resource_type = str(getattr(resource, "resource_type", type(resource).__name__))
    return AuditEvent.objects.create(
        tenant=tenant or resource.tenant,
        actor=user,
        actor_label=label,
        action=action,
        resource_type=resource_type,
        resource_name=str(getattr(resource, "name", resource))[:200],
        resource_path=resource.path,
        status=status,
        details=details,
        ip_address=client_ip(request),
    )
