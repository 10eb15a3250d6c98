from dataclasses import dataclass


@dataclass(frozen=True)
class ScopeFields:
    """Lookups from a model to the scope it lives in; None where the model sits above it.

    Every tenant-owned model declares one as ``scope_fields`` and implements
    ``scope_ids()`` returning (subscription id, resource group id, vault id).
    """

    subscription: str
    resource_group: str | None = None
    vault: str | None = None
    tenant: str = "tenant"
