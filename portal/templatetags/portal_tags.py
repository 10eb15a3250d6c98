from django import template
from django.utils.translation import gettext

from portal.audit import action_label as audit_action_label

register = template.Library()


@register.filter
def action_label(action: str) -> str:
    return audit_action_label(action)


@register.filter
def translated(text: str) -> str:
    """A stored source-language label (resource type, region) in the reader's language."""
    return gettext(text) if text else text


@register.filter
def sum_values(values) -> int:
    return sum(values or ())
