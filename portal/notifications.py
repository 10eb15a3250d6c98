"""Notifications for the bell: stored per user, updated in place by key."""

from django.conf import settings

from portal.events import publish_notification
from portal.models import Notification, UserPreferences


def language_of(user) -> str:
    """The language a user reads the portal in, for messages written by the worker."""
    prefs = UserPreferences.objects.filter(user=user).values_list("language", flat=True).first()
    return prefs or settings.LANGUAGE_CODE


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
