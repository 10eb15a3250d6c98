"""Worker entry points: thin wrappers around vault services."""

from vaults import services


def deploy_vault(vault_id):
    services.deploy_vault(vault_id)


def remove_vault(vault_id):
    services.remove_vault(vault_id)
