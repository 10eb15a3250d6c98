from django.utils import timezone
from django.utils.translation import gettext as _

from portal.models import Notification
from portal.tenancy import tenants_for


def live_labels():
    from agents.models import Job
    from agents.presentation import PHASE_LABELS

    return {
        "states": {value: str(label) for value, label in Job.State.choices},
        "phases": {value: str(label) for value, label in PHASE_LABELS.items()},
        "eta": str(_("ETA")),
        "seconds": str(_("s")),
    }


def shell(request):
    """What the frame around every page needs: directories, bell count, blade mode."""
    fragment = (
        bool(getattr(request, "htmx", False)) and request.headers.get("HX-Target") == "blades"
    )
    context = {
        "shell_template": "portal/fragment.html" if fragment else "portal/base.html",
        "current_time_zone": timezone.get_current_timezone_name(),
    }
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or fragment:
        return context
    tenant = request.tenant
    context["directories"] = tenants_for(user).only("id", "name", "domain")
    context["live_labels"] = live_labels()
    context["current_tenant"] = tenant
    context["unread_notifications"] = (
        Notification.objects.filter(
            user=user, tenant=tenant, read_at__isnull=True, dismissed_at__isnull=True
        ).count()
        if tenant
        else 0
    )
    return context
