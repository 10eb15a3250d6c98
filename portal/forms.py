import zoneinfo

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from portal.models import Region, Role, UserPreferences

COMMON_TIME_ZONES = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})


class ResourceGroupForm(forms.Form):
    name = forms.CharField(label=_("Resource group name"), max_length=90)
    region = forms.ModelChoiceField(label=_("Region"), queryset=Region.objects.all())


class RoleAssignmentForm(forms.Form):
    email = forms.EmailField(label=_("Member e-mail"), max_length=254)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class PreferencesForm(forms.Form):
    language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES)
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=[(z, z) for z in COMMON_TIME_ZONES])
    email_alerts = forms.ChoiceField(
        label=_("Alert e-mails"),
        choices=UserPreferences._meta.get_field("email_alerts").choices,
        initial="each",
        required=False,
    )


class AccessTokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    days = forms.IntegerField(
        label=_("Expires after (days)"), min_value=1, max_value=366, initial=30
    )


class ActivityFilterForm(forms.Form):
    RANGES = [
        ("1", _("Last 24 hours")),
        ("7", _("Last 7 days")),
        ("30", _("Last 30 days")),
        ("90", _("Last 90 days")),
    ]
    q = forms.CharField(required=False, max_length=100, label=_("Filter by operation or user"))
    days = forms.ChoiceField(required=False, choices=RANGES, initial="7", label=_("Time range"))
    status = forms.ChoiceField(
        required=False,
        choices=[("", _("All")), ("succeeded", _("Succeeded")), ("failed", _("Failed"))],
        label=_("Status"),
    )
