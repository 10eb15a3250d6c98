from django import template

from agents.presentation import PHASE_LABELS, RULE_LABELS

register = template.Library()


@register.filter
def phase_label(phase: str) -> str:
    return str(PHASE_LABELS.get(phase, phase))


@register.filter
def rule_labels(rules) -> str:
    return ", ".join(str(RULE_LABELS.get(rule, rule)) for rule in rules or ())
