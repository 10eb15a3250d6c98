"""Notifications for the bell: stored per user, updated in place by key."""

from portal.events import publish_notification
from portal.models import Notification


def notify(user, tenant, *, title, body="", level="info", link="", link_label="", key=""):
    """Create a notification, or update the one with the same key (deployment progress)."""
    if user is None:
        return None
    fields = {"title": title, "body": body, "level": level, "link": link, "link_label": link_label}
    if key:
        notification, _ = Notification.objects.update_or_create(
            user=user,
            tenant=tenant,
            key=key,
            defaults={**fields, "read_at": None, "dismissed_at": None},
        )
    else:
        notification = Notification.objects.create(user=user, tenant=tenant, **fields)
    publish_notification(notification)
    return notification
