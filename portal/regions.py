"""The region catalogue offered when creating resource groups and vaults.

Names are stored in English and shown translated (they are in the message catalogue).
"""

from django.utils.translation import gettext_noop as _

REGIONS = [
    ("eastus", _("East US"), _("United States")),
    ("westus2", "West US 2", "United States"),
    ("centralus", _("Central US"), _("United States")),
    ("canadacentral", _("Canada Central"), _("Canada")),
    ("brazilsouth", _("Brazil South"), _("Brazil")),
    ("northeurope", _("North Europe"), _("Europe")),
    ("westeurope", _("West Europe"), _("Europe")),
    ("germanywestcentral", _("Germany West Central"), _("Germany")),
    ("uksouth", _("UK South"), _("United Kingdom")),
    ("francecentral", _("France Central"), _("France")),
    ("switzerlandnorth", _("Switzerland North"), _("Switzerland")),
    ("japaneast", _("Japan East"), _("Japan")),
    ("japanwest", _("Japan West"), _("Japan")),
    ("koreacentral", _("Korea Central"), _("Korea")),
    ("southeastasia", _("Southeast Asia"), _("Asia Pacific")),
    ("eastasia", _("East Asia"), _("Asia Pacific")),
    ("australiaeast", _("Australia East"), _("Australia")),
    ("centralindia", _("Central India"), _("India")),
    ("southafricanorth", _("South Africa North"), _("Africa")),
    ("uaenorth", _("UAE North"), _("Middle East")),
]


def load_regions(region_model):
    for code, name, geography in REGIONS:
        region_model.objects.update_or_create(
            code=code, defaults={"name": name, "geography": geography}
        )
