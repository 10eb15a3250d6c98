from django import forms
from django.utils.translation import gettext_lazy as _

from portal.models import Region
from vaults.models import Immutability, Redundancy


class VaultBasicsForm(forms.Form):
    subscription = forms.ChoiceField(label=_("Subscription"))
    resource_group = forms.ChoiceField(label=_("Resource group"), required=False)
    new_resource_group = forms.CharField(
        label=_("New resource group name"), required=False, max_length=90
    )
    name = forms.CharField(
        label=_("Vault name"),
        max_length=50,
        strip=True,
        help_text=_("2 to 50 characters: letters, numbers and hyphens, starting with a letter."),
    )
    region = forms.ModelChoiceField(label=_("Region"), queryset=Region.objects.all())

    def __init__(self, *args, subscriptions, groups, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subscription"].choices = [(str(s.pk), s.name) for s in subscriptions]
        self.fields["resource_group"].choices = [("", _("Create new…"))] + [
            (str(g.pk), g.name) for g in groups
        ]
        self.fields["name"].widget.attrs.update(autocomplete="off", spellcheck="false")


class RedundancyForm(forms.Form):
    redundancy = forms.ChoiceField(
        label=_("Storage replication type"), choices=Redundancy.choices, widget=forms.RadioSelect
    )


class SecurityForm(forms.Form):
    soft_delete_enabled = forms.BooleanField(label=_("Enable soft delete"), required=False)
    soft_delete_days = forms.IntegerField(
        label=_("Soft delete retention (days)"), min_value=14, max_value=180
    )
    immutability = forms.ChoiceField(label=_("Immutability"), choices=Immutability.choices)
    pin = forms.CharField(
        label=_("Security PIN"),
        required=False,
        max_length=8,
        help_text=_("Needed to turn protection off."),
    )
