"""The region catalogue offered when creating resource groups and vaults."""

REGIONS = [
    ("eastus", "East US", "United States"),
    ("westus2", "West US 2", "United States"),
    ("centralus", "Central US", "United States"),
    ("canadacentral", "Canada Central", "Canada"),
    ("brazilsouth", "Brazil South", "Brazil"),
    ("northeurope", "North Europe", "Europe"),
    ("westeurope", "West Europe", "Europe"),
    ("germanywestcentral", "Germany West Central", "Germany"),
    ("uksouth", "UK South", "United Kingdom"),
    ("francecentral", "France Central", "France"),
    ("switzerlandnorth", "Switzerland North", "Switzerland"),
    ("japaneast", "Japan East", "Japan"),
    ("japanwest", "Japan West", "Japan"),
    ("koreacentral", "Korea Central", "Korea"),
    ("southeastasia", "Southeast Asia", "Asia Pacific"),
    ("eastasia", "East Asia", "Asia Pacific"),
    ("australiaeast", "Australia East", "Australia"),
    ("centralindia", "Central India", "India"),
    ("southafricanorth", "South Africa North", "Africa"),
    ("uaenorth", "UAE North", "Middle East"),
]


def load_regions(region_model):
    for code, name, geography in REGIONS:
        region_model.objects.update_or_create(
            code=code, defaults={"name": name, "geography": geography}
        )
